"""`tribert render-solos`: phrases per class, the MIDI file, FluidSynth rendering, loudness, the manifest, and the
ideal-mask ceiling on realistic renders. The rendering tests need FluidSynth and Debian's TimGM6mb soundfont
(`make system-deps` installs both; CI has them) and are skipped without them."""

import json
import os
import shutil
import struct

import numpy as np
import pytest
import torch

from tribert_hf import MUSIC21_LABELS, TriBertFeatureExtractor
from tribert_hf.data.soundfont import (
    DEBIAN_SOUNDFONTS,
    PERFORMERS,
    compose_clip,
    midi_file,
    normalize_loudness,
    render_solos,
)


TIMGM = DEBIAN_SOUNDFONTS["timgm6mb-soundfont"]
needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not os.path.isfile(TIMGM),
    reason="needs FluidSynth and the timgm6mb-soundfont package (`make system-deps`, or `apt-get install "
    "--no-install-recommends fluidsynth timgm6mb-soundfont`)",
)


def _parse_midi(data: bytes) -> list[tuple[int, int, int, int]]:
    """(tick, status, data1, data2) of every channel event of a type-0 file as `midi_file` writes it."""
    assert data[:4] == b"MThd" and struct.unpack(">IHHH", data[4:14]) == (6, 0, 1, 480)
    assert data[14:18] == b"MTrk"
    (length,) = struct.unpack(">I", data[18:22])
    track, position, tick, events = data[22 : 22 + length], 0, 0, []
    while position < len(track):
        delta = 0
        while True:
            byte = track[position]
            position += 1
            delta = (delta << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        tick += delta
        status = track[position]
        if status == 0xFF:  # meta: only end of track
            assert track[position : position + 3] == b"\xff\x2f\x00"
            break
        size = 2 if status >> 4 == 0xC else 3
        events.append((tick, status, track[position + 1], track[position + 2] if size == 3 else 0))
        position += size
    return events


def test_every_class_has_a_performer_in_general_midi_range():
    assert set(PERFORMERS) == set(MUSIC21_LABELS)
    for label, performer in PERFORMERS.items():
        assert all(0 <= p < 128 for p in performer.programs)
        assert performer.programs or performer.drum_keys, label
        if performer.programs:
            assert 21 <= performer.pitch[0] < performer.pitch[1] <= 108, label
    substitutes = {label for label, performer in PERFORMERS.items() if performer.substitute}
    assert substitutes == {"erhu", "pipa", "guzheng", "ukulele"}


@pytest.mark.parametrize("label", ["violin", "acoustic_guitar", "pipa", "drum", "congas"])
def test_phrases_are_seeded_in_range_and_inside_the_clip(label):
    clip = compose_clip(label, seconds=6.0, seed=3, index=1)
    assert clip == compose_clip(label, seconds=6.0, seed=3, index=1)  # depends only on its arguments
    assert clip["notes"] != compose_clip(label, seconds=6.0, seed=3, index=2)["notes"]
    notes = clip["notes"]
    assert len(notes) >= 6
    assert all(0 <= n.start and n.start + n.duration <= 6.0 and 1 <= n.velocity <= 127 for n in notes)
    performer = PERFORMERS[label]
    if performer.programs:
        assert clip["program"] in performer.programs
        assert all(performer.pitch[0] <= n.pitch <= performer.pitch[1] for n in notes)
    else:
        assert clip["program"] is None and {n.pitch for n in notes} <= set(performer.drum_keys)


def test_midi_file_holds_every_note_on_its_channel():
    violin, drum = compose_clip("violin", 4.0, 0, 0), compose_clip("drum", 4.0, 0, 0)
    events = _parse_midi(midi_file([(0.0, violin["program"], violin["notes"]), (7.0, None, drum["notes"])]))
    ons = [e for e in events if e[1] >> 4 == 0x9]
    offs = [e for e in events if e[1] >> 4 == 0x8]
    assert len(ons) == len(offs) == len(violin["notes"]) + len(drum["notes"])
    assert (0, 0xC0, 40, 0) in events  # the violin's program change, channel 1
    assert {e[1] & 0x0F for e in ons} == {0, 9}  # the drum kit plays on channel 10
    assert all(e[0] >= 7 * 960 for e in ons if e[1] & 0x0F == 9)  # the second clip starts at 7 s
    assert [e[0] for e in events] == sorted(e[0] for e in events)


def test_loudness_normalisation_and_silence():
    rate = 11025
    wave = np.concatenate([np.zeros(rate), 0.001 * np.sin(np.arange(2 * rate) * 0.1)])
    out = normalize_loudness(wave, rate)
    active = out[rate:]
    assert abs(20 * np.log10(np.sqrt(np.mean(active**2))) - (-20.0)) < 0.5
    loud = normalize_loudness(np.r_[np.zeros(rate), 1.0, np.zeros(rate)] + 1e-4, rate)
    assert np.abs(loud).max() <= 0.95 + 1e-9  # the peak limit wins over the RMS target
    with pytest.raises(ValueError, match="silent"):
        normalize_loudness(np.zeros(2 * rate), rate)


def test_missing_soundfont_and_fluidsynth_are_named(tmp_path, monkeypatch, capsys):
    from tribert_hf.cli import main

    assert main(["render-solos", str(tmp_path / "out"), "--soundfont", str(tmp_path / "none.sf2")]) == 2
    assert "none.sf2' does not exist" in capsys.readouterr().err
    bogus = tmp_path / "bogus.sf2"
    bogus.write_bytes(b"not a soundfont at all")
    assert main(["render-solos", str(tmp_path / "out"), "--soundfont", str(bogus)]) == 2
    assert "is not a SoundFont file" in capsys.readouterr().err
    if os.path.isfile(TIMGM):
        monkeypatch.setattr(shutil, "which", lambda name: None)
        assert main(["render-solos", str(tmp_path / "out"), "--soundfont", TIMGM, "--classes", "violin"]) == 2
        assert "apt-get install --no-install-recommends fluidsynth" in capsys.readouterr().err
    assert main(["render-solos", str(tmp_path / "out"), "--soundfont", str(bogus), "--classes", "kazoo"]) == 2
    assert "Unknown instrument class" in capsys.readouterr().err


@needs_fluidsynth
def test_render_solos_writes_clips_and_manifest_and_resumes(tmp_path):
    from tribert_hf.data.synthetic import index_sounds
    from tribert_hf.data.prepared import read_wav

    out = tmp_path / "solos"
    manifest = render_solos(str(out), [TIMGM], classes=["violin", "drum"], clips_per_class=2, seconds=3.0, progress=False)
    assert [c["path"] for c in manifest["clips"]] == ["violin/0.wav", "violin/1.wav", "drum/0.wav", "drum/1.wav"]
    assert json.loads((out / "manifest.json").read_text())["clips"] == manifest["clips"]
    violin = manifest["clips"][0]
    assert violin["program"] == 40 and violin["program_name"] == "Violin" and violin["soundfont"] == "TimGM6mb.sf2"
    assert manifest["clips"][2]["channel"] == 10 and manifest["clips"][2]["program"] is None
    assert violin["notes"] and len(violin["notes"][0]) == 4
    for clip in manifest["clips"]:
        wave, rate = read_wav(str(out / clip["path"]))
        assert rate == 11025 and wave.shape == (3 * 11025,) and np.isfinite(wave).all()
        assert 0.01 < np.abs(wave).max() <= 0.95 + 1e-6
    assert index_sounds(str(out)).classes == ("drum", "violin")  # a sounds folder for `tribert synthetic`
    before = os.path.getmtime(out / "violin" / "0.wav")
    render_solos(str(out), [TIMGM], classes=["violin", "drum"], clips_per_class=2, seconds=3.0, progress=False)
    assert os.path.getmtime(out / "violin" / "0.wav") == before  # rendered before: kept


@needs_fluidsynth
def test_ideal_binary_mask_reaches_15_db_on_realistic_renders(tmp_path):
    """The evaluation chain's ceiling on instrument renders: an oracle binary mask through the 256-bin
    log-frequency warp, the mixture phase and the inverse STFT separates two instruments at 15 dB or more."""
    from tribert_hf.data.collator import MixAndSeparateCollator
    from tribert_hf.data.prepared import read_wav
    from tribert_hf.evaluation import scoring_masks
    from tribert_hf.metrics import evaluate_separation

    pairs = [("trumpet", "acoustic_guitar"), ("violin", "cello"), ("flute", "piano")]
    classes = sorted({label for pair in pairs for label in pair})
    render_solos(str(tmp_path), [TIMGM], classes=classes, clips_per_class=1, seconds=6.0, progress=False)
    fe = TriBertFeatureExtractor()
    collate = MixAndSeparateCollator(fe, num_mix=2)
    examples = []
    for pair in pairs:
        for label in pair:
            wave = torch.from_numpy(read_wav(str(tmp_path / label / "0.wav"))[0])[: fe.num_samples]
            examples.append({
                "waveform": torch.nn.functional.pad(wave, (0, fe.num_samples - len(wave)))[None],
                "pixel_values": torch.zeros(1), "pose_keypoints": torch.zeros(1), "pose_mask": torch.zeros(1),
                "class_labels": torch.zeros(1),
            })  # fmt: skip
    batch = collate(examples)
    masks = scoring_masks("ideal_binary", batch, fe, None)
    estimates = fe.masks_to_waveforms(masks, batch["mixture_stft"], batch["mixture_waveform"].shape[-1])
    result = evaluate_separation(batch["source_waveforms"], estimates, batch["mixture_waveform"])
    sdr = np.asarray(result["sdr"])
    assert sdr.shape == (3,) and (sdr >= 15.0).all(), sdr
    assert (np.asarray(result["sdr_mixture"]) < 5.0).all()  # the mixtures themselves are far from separated
