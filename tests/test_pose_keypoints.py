"""Reading AlphaPose / COCO-WholeBody keypoint JSON into the prepared pose format, and window resampling."""

import json
import os

import numpy as np
import pytest

from tribert_hf.pose.graph import HALPE26_JOINT_NAMES
from tribert_hf.pose.keypoints import LAYOUTS, load_keypoints, map_to_halpe68, resample_keypoints


FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
HALPE136 = os.path.join(FIXTURES, "alphapose_halpe136_two_persons.json")  # 6 frames, 640x360, B gone after frame 3
WHOLEBODY = os.path.join(FIXTURES, "coco_wholebody_one_person.json")  # image_id 0 and 2, one person
TRACKED = os.path.join(FIXTURES, "alphapose_halpe26_tracked.json")  # tracks 3 (left), 7 (right), 12 (frame 2 only)
SIZE = (640, 360)


def _write(tmp_path, data, name="keypoints.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def _detection(frame, center_x, score=2.0, num_keypoints=26, confidence=0.8, **extra):
    """A detection whose keypoints all sit at (center_x, 180) px."""
    keypoints = [center_x, 180.0, confidence] * num_keypoints
    return {"image_id": f"{frame}.jpg", "category_id": 1, "keypoints": keypoints, "score": score, **extra}


# ---------------------------------------------------------------------------------------------------- AlphaPose


def test_halpe136_fixture_shape_slots_and_departure():
    pose = load_keypoints(HALPE136, SIZE)
    assert pose.shape == (2, 6, 68, 3) and pose.dtype == np.float32
    # The JSON lists the persons in a different order from frame to frame (and B, the right one, scores
    # higher): slot 0 is still always the left person A (near x = 150 px), slot 1 the right person B (480 px).
    nose_x = pose[:, :, 0, 0] * SIZE[0]
    np.testing.assert_allclose(nose_x[0], [150, 152, 154, 156, 158, 160], atol=1e-3)
    np.testing.assert_allclose(nose_x[1, :4], [480, 479, 478, 477], atol=1e-3)
    # B has no detection in frames 4-5: all zeros there.
    assert np.all(pose[1, 4:] == 0)
    assert np.all(pose[1, :4, :, 2] > 0)
    # The low-score (0.02) detection in frame 2 (x = 320 px) is ignored.
    assert not np.any(np.isclose(pose[..., 0] * SIZE[0], 320.0))


def test_halpe136_normalised_hands_mapped_face_dropped():
    pose = load_keypoints(HALPE136, SIZE)
    assert pose.min() >= 0.0 and pose.max() <= 1.0
    present = pose[:, :4]
    # Fixture confidences: body 0.9, face 0.52, left hand 0.71, right hand 0.66.
    np.testing.assert_allclose(present[..., :26, 2], 0.9, atol=1e-6)
    np.testing.assert_allclose(present[..., 26:47, 2], 0.71, atol=1e-6)
    np.testing.assert_allclose(present[..., 47:68, 2], 0.66, atol=1e-6)
    assert not np.any(np.isclose(pose[..., 2], 0.52)), "face keypoints must be dropped"
    # Hand wrist points coincide with the body wrists in the fixture (left 9, right 10).
    np.testing.assert_allclose(present[..., 26, :2], present[..., 9, :2], atol=1e-6)
    np.testing.assert_allclose(present[..., 47, :2], present[..., 10, :2], atol=1e-6)
    # y is divided by the height: person A's nose at 85 px.
    np.testing.assert_allclose(pose[0, 0, 0, 1], 85 / 360, atol=1e-6)


def test_forced_format_matches_auto_and_rejects_wrong_k():
    np.testing.assert_array_equal(load_keypoints(HALPE136, SIZE, format="halpe136"), load_keypoints(HALPE136, SIZE))
    with pytest.raises(ValueError, match="coco_wholebody") as info:
        load_keypoints(HALPE136, SIZE, format="coco_wholebody")
    assert HALPE136 in str(info.value)
    with pytest.raises(ValueError, match="Unknown keypoint format"):
        load_keypoints(HALPE136, SIZE, format="openpose25")


def test_num_frames_pads_and_truncates():
    padded = load_keypoints(HALPE136, SIZE, num_frames=9)
    assert padded.shape == (2, 9, 68, 3)
    np.testing.assert_array_equal(padded[:, :6], load_keypoints(HALPE136, SIZE))
    assert np.all(padded[:, 6:] == 0)
    assert load_keypoints(HALPE136, SIZE, num_frames=3).shape == (2, 3, 68, 3)


def test_one_slot_keeps_the_leftmost_continuous_person():
    pose = load_keypoints(HALPE136, SIZE, max_persons=1)
    assert pose.shape == (1, 6, 68, 3)
    assert np.all(pose[0, :, 0, 2] > 0)  # A is there in every frame


def test_halpe68_halpe26_coco17_layouts(tmp_path):
    halpe68 = [_detection(0, 100.0, num_keypoints=68)]
    pose = load_keypoints(_write(tmp_path, halpe68), SIZE, max_persons=1)
    np.testing.assert_allclose(pose[0, 0, :, 2], 0.8)
    halpe26 = [_detection(0, 100.0, num_keypoints=26)]
    pose = load_keypoints(_write(tmp_path, halpe26), SIZE, max_persons=1)
    assert np.all(pose[0, 0, :26, 2] == np.float32(0.8)) and np.all(pose[0, 0, 26:] == 0)  # no hands
    coco17 = [_detection(0, 100.0, num_keypoints=17)]
    pose = load_keypoints(_write(tmp_path, coco17), SIZE, max_persons=1)
    assert pose[0, 0, 17].tolist() == [0, 0, 0]  # head: no COCO equivalent
    assert np.all(pose[0, 0, [18, 19], 2] > 0)  # neck, hip: midpoints
    assert np.all(pose[0, 0, 20:] == 0)  # no feet, no hands in COCO-17


def test_coordinates_are_clipped_and_frame_ids_parsed(tmp_path):
    detection = _detection(0, 100.0)
    detection["keypoints"][:6] = [-12.0, 400.0, 0.9, 700.0, -3.0, 0.9]  # outside the 640x360 frame
    other = _detection(0, 100.0, image_id="frame_000003.png")
    numeric = _detection(0, 100.0, image_id=5)
    pose = load_keypoints(_write(tmp_path, [detection, other, numeric]), SIZE, max_persons=1)
    assert pose.shape == (1, 6, 68, 3)
    assert pose[0, 0, 0, :2].tolist() == [0.0, 1.0] and pose[0, 0, 1, :2].tolist() == [1.0, 0.0]
    assert np.all(pose[0, [0, 3, 5], 2, 2] > 0) and np.all(pose[0, [1, 2, 4]] == 0)
    shifted = load_keypoints(_write(tmp_path, [other]), SIZE, max_persons=1, frame_index_base=1)
    assert shifted.shape == (1, 3, 68, 3) and np.all(shifted[0, 2, :26, 2] > 0)


def test_position_linking_drops_extra_people_and_handles_returns(tmp_path):
    detections = [
        _detection(0, 100.0), _detection(0, 500.0),
        _detection(1, 104.0), _detection(1, 300.0, score=3.5), _detection(1, 496.0),  # a third person, best score
        _detection(2, 496.0),  # left person absent
        _detection(3, 492.0), _detection(3, 110.0),  # ... and back, listed second
    ]  # fmt: skip
    pose = load_keypoints(_write(tmp_path, detections), SIZE)
    x = pose[:, :, 0, 0] * SIZE[0]
    np.testing.assert_allclose(x[0], [100, 104, 0, 110], atol=1e-3)
    np.testing.assert_allclose(x[1], [500, 496, 496, 492], atol=1e-3)
    assert np.all(pose[0, 2] == 0)
    # With a single slot, the extra person does not steal it from the continuing one.
    single = load_keypoints(_write(tmp_path, detections[:5]), SIZE, max_persons=1)
    assert single[0, 1, 0, 0] * SIZE[0] != pytest.approx(300.0)


def test_min_score_argument(tmp_path):
    detections = [_detection(0, 100.0, score=0.3), _detection(0, 500.0, score=1.0)]
    path = _write(tmp_path, detections)
    assert np.all(load_keypoints(path, SIZE)[:, 0, 0, 2] > 0)
    strict = load_keypoints(path, SIZE, min_score=0.5)
    np.testing.assert_allclose(strict[0, 0, 0, 0] * SIZE[0], 500.0, atol=1e-3)  # only one person left: slot 0
    assert np.all(strict[1] == 0)


def test_empty_list_gives_zero_frames(tmp_path):
    path = _write(tmp_path, [])
    assert load_keypoints(path, SIZE).shape == (2, 0, 68, 3)
    assert np.all(load_keypoints(path, SIZE, num_frames=4) == 0)


# ---------------------------------------------------------------------------------------------------- COCO-WholeBody


def test_coco_wholebody_neck_hip_feet_and_hands():
    pose = load_keypoints(WHOLEBODY, SIZE)
    assert pose.shape == (2, 3, 68, 3)  # image_id 0 and 2 (ints): 3 frames; one person
    assert np.all(pose[:, 1] == 0) and np.all(pose[1] == 0)
    person = pose[0, 0] * np.array([SIZE[0], SIZE[1], 1.0], dtype=np.float32)
    # Shoulders (300, 100, 0.8) and (260, 104, 0.6); hips (295, 200, 0.9) and (265, 200, 0.7).
    np.testing.assert_allclose(person[18], [280, 102, 0.6], atol=1e-3)
    np.testing.assert_allclose(person[19], [280, 200, 0.7], atol=1e-3)
    assert person[17].tolist() == [0, 0, 0]  # head
    # Feet: fixture confidences 0.51..0.56 in COCO-WholeBody order
    # (left big toe, left small toe, left heel, right big toe, right small toe, right heel).
    names = HALPE26_JOINT_NAMES
    expected = {
        "left_big_toe": 0.51, "left_small_toe": 0.52, "left_heel": 0.53,
        "right_big_toe": 0.54, "right_small_toe": 0.55, "right_heel": 0.56,
    }  # fmt: skip
    for name, confidence in expected.items():
        assert person[names.index(name), 2] == pytest.approx(confidence, abs=1e-6), name
    np.testing.assert_allclose(person[names.index("left_big_toe"), :2], [302, 292], atol=1e-3)
    np.testing.assert_allclose(person[26:47, 2], 0.61, atol=1e-6)
    np.testing.assert_allclose(person[47:68, 2], 0.62, atol=1e-6)
    assert not np.any(np.isclose(pose[..., 2], 0.3)), "face keypoints must be dropped"


def test_coco_wholebody_annotation_file(tmp_path):
    detection = json.loads(open(WHOLEBODY).read())[0]
    values = detection["keypoints"]
    annotation = {
        "image_id": 9001, "category_id": 1,
        "keypoints": values[:51], "foot_kpts": values[51:69], "face_kpts": values[69:273],
        "lefthand_kpts": values[273:336], "righthand_kpts": values[336:399],
    }  # fmt: skip
    document = {"images": [{"id": 9001, "file_name": "000004.jpg"}], "annotations": [annotation]}
    pose = load_keypoints(_write(tmp_path, document), SIZE)
    assert pose.shape == (2, 5, 68, 3)
    np.testing.assert_allclose(pose[0, 4], load_keypoints(WHOLEBODY, SIZE)[0, 0], atol=1e-6)


def test_mapping_tables_are_consistent():
    for layout in LAYOUTS.values():
        assert layout.source_a.shape == layout.source_b.shape == (68,)
        assert layout.source_a.max() < layout.num_keypoints and layout.source_b.max() < layout.num_keypoints
    keypoints = np.random.default_rng(0).random((4, 3, 136, 3)).astype(np.float32)
    mapped = map_to_halpe68(keypoints, "halpe136")
    assert mapped.shape == (4, 3, 68, 3)
    np.testing.assert_array_equal(mapped[..., 26:47, :], keypoints[..., 94:115, :])
    np.testing.assert_array_equal(mapped[..., 47:, :], keypoints[..., 115:, :])


# ---------------------------------------------------------------------------------------------------- track ids


def test_track_ids_pick_the_strongest_tracks_in_fixed_slots():
    pose = load_keypoints(TRACKED, SIZE)
    assert pose.shape == (2, 4, 68, 3)
    x = pose[:, :, 0, 0] * SIZE[0]
    np.testing.assert_allclose(x[0], [120, 122, 0, 126], atol=1e-3)  # track 3 (leftmost), absent in frame 2
    np.testing.assert_allclose(x[1], [500, 498, 496, 494], atol=1e-3)  # track 7
    assert np.all(pose[0, 2] == 0), "track 12 (low summed score) must not fill track 3's slot"


def test_without_usable_track_ids_position_linking_is_used(tmp_path):
    detections = json.loads(open(TRACKED).read())
    for detection in detections:
        detection["idx"] = 0  # AlphaPose without tracking: the same id for everyone
    pose = load_keypoints(_write(tmp_path, detections), SIZE)
    x = pose[:, :, 0, 0] * SIZE[0]
    np.testing.assert_allclose(x[1], [500, 498, 496, 494], atol=1e-3)
    np.testing.assert_allclose(x[0], [120, 122, 320, 126], atol=1e-3)  # the free slot takes the newcomer


# ---------------------------------------------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    missing = str(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError) as info:
        load_keypoints(missing, SIZE)
    assert missing in str(info.value)
    zeros = load_keypoints(missing, SIZE, num_frames=7, allow_missing=True)
    assert zeros.shape == (2, 7, 68, 3) and zeros.dtype == np.float32 and not zeros.any()
    with pytest.raises(ValueError, match="num_frames") as info:
        load_keypoints(missing, SIZE, allow_missing=True)
    assert missing in str(info.value)


@pytest.mark.parametrize(
    "content, message",
    [
        ("[{\"image_id\": 0, \"keypoints\": [1, 2", "not valid JSON"),
        ({"image_id": 0, "keypoints": [1.0, 2.0, 0.5]}, "not a list of detections"),
        ([[1.0, 2.0, 0.5]], "not a dict"),
        ([{"image_id": "0.jpg", "keypoints": [1.0, 2.0, 0.5, 4.0], "score": 1.0}], "not a multiple of 3"),
        ([{"image_id": "0.jpg", "keypoints": [1.0, 2.0, 0.5] * 25, "score": 1.0}], "K=25"),
        ([{"image_id": "first.jpg", "keypoints": [1.0, 2.0, 0.5] * 26, "score": 1.0}], "frame index"),
        ([{"image_id": 1.5, "keypoints": [1.0, 2.0, 0.5] * 26, "score": 1.0}], "frame index"),
        ([_detection(0, 1.0, num_keypoints=26), _detection(1, 1.0, num_keypoints=17)], "mixes keypoint counts"),
    ],
    ids=[
        "unparsable", "dict", "not-detections", "length", "unsupported-k", "image-id-name", "image-id-float", "mixed-k",
    ],  # fmt: skip
)
def test_malformed_files_raise_value_error_naming_the_file(tmp_path, content, message):
    path = _write(tmp_path, content)
    with pytest.raises(ValueError, match=message) as info:
        load_keypoints(path, SIZE)
    assert path in str(info.value)


def test_bad_arguments():
    with pytest.raises(ValueError, match="frame_size"):
        load_keypoints(HALPE136, (0, 360))
    with pytest.raises(ValueError, match="max_persons"):
        load_keypoints(HALPE136, SIZE, max_persons=0)


# ---------------------------------------------------------------------------------------------------- resampling


def _ramp_pose(num_frames=40, persons=2):
    """Keypoints whose x encodes the frame index (x = k / 100), confidence 1 everywhere."""
    pose = np.zeros((persons, num_frames, 68, 3), dtype=np.float32)
    pose[..., 0] = (np.arange(num_frames, dtype=np.float32) / 100)[None, :, None]
    pose[..., 1] = 0.5
    pose[..., 2] = 1.0
    return pose


def test_resample_shapes_and_window_cutting():
    pose = _ramp_pose()  # 40 frames at 8 fps = 5 s
    out, mask = resample_keypoints(pose, pose_fps=8.0, start=1.0, duration=2.0, num_output_frames=16)
    assert out.shape == (2, 16, 68, 3) and out.dtype == np.float32
    assert mask.shape == (2,) and mask.dtype == np.int64 and mask.tolist() == [1, 1]
    np.testing.assert_allclose(out[0, :, 0, 0], np.arange(8, 24) / 100, atol=1e-6)  # frames 8..23
    default, _ = resample_keypoints(pose, 8.0, 0.0, 5.0)
    assert default.shape == (2, 256, 68, 3)


def test_resample_interpolates_between_confident_frames():
    pose = _ramp_pose()
    out, _ = resample_keypoints(pose, pose_fps=8.0, start=1.0, duration=1.0, num_output_frames=16)  # 16 fps
    np.testing.assert_allclose(out[0, :, 0, 0], (8 + np.arange(16) / 2) / 100, atol=1e-6)
    pose[:, 9, 0, 2] = 0.0  # joint 0 unconfident in frame 9: nearest frame instead of blending with it
    out, _ = resample_keypoints(pose, pose_fps=8.0, start=1.0, duration=1.0, num_output_frames=16)
    assert out[0, 1, 0, 0] == pytest.approx(0.09)  # position 8.5 rounds to frame 9 (its x is kept)
    assert out[0, 1, 0, 2] == 0.0


def test_resample_outside_the_video_is_zero():
    pose = _ramp_pose()  # 5 s
    out, mask = resample_keypoints(pose, pose_fps=8.0, start=4.0, duration=2.0, num_output_frames=16)
    assert np.all(out[:, :8, :, 2] == 1.0) and np.all(out[:, 8:] == 0)
    assert mask.tolist() == [1, 1]
    before, _ = resample_keypoints(pose, pose_fps=8.0, start=-1.0, duration=2.0, num_output_frames=16)
    assert np.all(before[:, :8] == 0) and np.all(before[:, 8:, :, 2] == 1.0)


def test_resample_masks_briefly_present_person():
    pose = _ramp_pose()
    pose[1] = 0.0
    pose[1, 10:11] = 1.0  # person 1 in 1 of the window's 16 frames (6 %)
    out, mask = resample_keypoints(pose, pose_fps=8.0, start=1.0, duration=2.0, num_output_frames=16, min_presence=0.1)
    assert mask.tolist() == [1, 0]
    assert np.all(out[1] == 0) and np.all(out[0, :, :, 2] == 1.0)
    _, mask = resample_keypoints(pose, pose_fps=8.0, start=1.0, duration=2.0, num_output_frames=16, min_presence=0.05)
    assert mask.tolist() == [1, 1]
    empty = np.zeros((2, 10, 68, 3), np.float32)
    _, mask = resample_keypoints(empty, 8.0, 0.0, 1.0, num_output_frames=8, min_presence=0.0)
    assert mask.tolist() == [0, 0]  # never present: masked even with min_presence=0


def test_resample_fixture_end_to_end():
    pose = load_keypoints(HALPE136, SIZE)  # 6 frames; person B (slot 1) present in frames 0-3
    out, mask = resample_keypoints(pose, pose_fps=6.0, start=0.5, duration=0.5, num_output_frames=8)
    assert out.shape == (2, 8, 68, 3) and mask.tolist() == [1, 1]
    out, mask = resample_keypoints(pose, pose_fps=6.0, start=0.75, duration=0.25, num_output_frames=8)
    assert mask.tolist() == [1, 0]  # window = frames 4.5-5.9: B has left


def test_resample_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        resample_keypoints(np.zeros((10, 68, 3)), 8.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="pose_fps"):
        resample_keypoints(_ramp_pose(), 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="duration"):
        resample_keypoints(_ramp_pose(), 8.0, 0.0, 0.0)


def test_read_detections_gives_the_raw_pixels_and_frames(tmp_path):
    """`read_detections`: the file's detections before normalisation (pixels, beyond the frame too) with their
    frame indices; detections under `min_score` and of other categories are left out."""
    from tribert_hf.pose.keypoints import read_detections

    data = [_detection(0, 100.0), _detection(3, 900.0), _detection(5, 50.0, score=0.01), _detection(6, 70.0, category_id=2)]
    keypoints, frames = read_detections(_write(tmp_path, data))
    assert keypoints.shape == (2, 26, 3) and frames.tolist() == [0, 3]
    assert keypoints[1, 0, 0] == 900.0 and keypoints[0, 0, 2] == pytest.approx(0.8)
    keypoints, frames = read_detections(_write(tmp_path, []))
    assert keypoints.shape[0] == 0 and frames.size == 0
