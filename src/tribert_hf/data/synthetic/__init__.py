"""The built-in synthetic music dataset: seeded, deterministic "music videos" in the prepared format.

Every video has one player (solo) or two (duet), each playing one instrument class of MUSIC21:

* audio: a random melody per player, synthesised with a class-specific timbre (`TIMBRES`: partials, envelope,
  vibrato, pitch range, note lengths); each source is normalised to a peak of 0.5 and the stored mixture is
  their sum (sources and mixture scaled down together when its peak would exceed 0.9);
* frames: a plain, slightly noisy background, a stick-figure player per instrument and the instrument as a
  coloured shape (`LOOKS`) that brightens when a note starts;
* pose: Halpe-68 keypoints of the players, whose hands strike, strum, bow or press (`GESTURES`) at the
  note onsets of their instrument while the body sways.

With `sounds_dir`, a folder of solo clips `<class>/<name>.wav`, the audio comes from the clips instead of the
synthesiser: each player plays a random segment of a clip of its class, and the onsets that drive its gestures
and flashes are detected in that segment (`detect_onsets`); train, val and test use disjoint clips
(`clip_split`).

A video depends only on `(seed, split, index)` and the generation parameters, so regenerating it gives the same
audio and pose bytes. Besides the prepared-format files (see `tribert_hf.data.prepared`), each video also has its
separate sources, the ground truth of separation: `media/<video_id>/sources/<class>.wav` (`read_sources`;
`<class>-2.wav` for the second player of a same-class duet, an opt-in: `same_class_duet_fraction`).

Units: times in seconds, audio as mono float32 at `sampling_rate` Hz, pitches as MIDI note numbers
(69 = A4 = 440 Hz), sizes of players and instruments in body heights ("H", head top to ankle, about
the player's height), keypoint coordinates as x / width and y / height of the frame.

Modules: `audio` (timbres, melodies, synthesis), `sounds` (the sound bank of a sounds folder, its clips per
split, a player's source from a clip), `onsets` (`detect_onsets`), `animation` (looks, gestures, the players'
keypoints), `render` (the frames), `dataset` (a video, the generated dataset, the cached presets).
"""

from .animation import GESTURES, LOOKS, Gesture, Hand, Look
from .audio import TIMBRES, Melody, Timbre, random_melody, synthesize
from .dataset import (
    DEFAULT_SYNTHETIC_CLASSES,
    GENERATION_DEFAULTS,
    GENERATOR_VERSION,
    MARKER_FILE,
    OPTIONAL_GENERATION_DEFAULTS,
    SYNTHETIC_PRESETS,
    SyntheticVideo,
    generate_synthetic_music,
    load_synthetic_music,
    make_synthetic_video,
    player_names,
    read_sources,
    video_players,
)
from .onsets import detect_onsets
from .sounds import SoundBank, clip_split, index_sounds


__all__ = [
    "DEFAULT_SYNTHETIC_CLASSES",
    "GESTURES",
    "LOOKS",
    "SYNTHETIC_PRESETS",
    "TIMBRES",
    "Gesture",
    "Hand",
    "Look",
    "Melody",
    "SoundBank",
    "SyntheticVideo",
    "Timbre",
    "clip_split",
    "detect_onsets",
    "generate_synthetic_music",
    "index_sounds",
    "load_synthetic_music",
    "make_synthetic_video",
    "player_names",
    "random_melody",
    "read_sources",
    "synthesize",
    "video_players",
]
