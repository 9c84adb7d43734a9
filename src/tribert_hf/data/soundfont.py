"""Realistic solo clips for all 21 MUSIC21 classes: seeded phrases rendered through a General MIDI soundfont.

`render_solos` (the `tribert render-solos` command) writes `OUTPUT/<class>/<k>.wav`, mono at 11025 Hz and
loudness-normalised, plus `OUTPUT/manifest.json` (program, soundfont, tempo and every note of every clip). The
folder is a sounds folder for `tribert synthetic --sounds-dir` (see docs/data.md): the videos' players then play
instrument recordings instead of the built-in additive synthesiser.

Each class has a `Performer`: a General MIDI program (or percussion keys on channel 10), the instrument's range
and a playing style (note lengths, rests, articulation, chords, tremolo, drum patterns). A clip depends only on
`(seed, class, k)` and the soundfont, so a clip renders the same whatever other classes or clip counts are asked.
Any General MIDI soundfont works (`.sf2`, or `.sf3` where FluidSynth reads it); with several soundfonts clip k
uses soundfont k mod their number, so every split sees each sound set.

GM has no erhu, pipa, guzheng or ukulele: they use close substitutes, named in `Performer.substitute` (erhu ->
Fiddle, a bowed string with vibrato in the erhu's range; pipa -> Shamisen, a plucked lute, played with tremolo;
guzheng -> Koto, a plucked zither; ukulele -> Acoustic Guitar (nylon) in the ukulele's high, strummed range).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..configuration_tribert import MUSIC21_LABELS
from ..feature_extraction_tribert import SAMPLING_RATE
from ..media import read_wav, write_wav


RENDER_VERSION = 1  # bump when the phrases or the rendering change: recorded in the manifest
DEBIAN_SOUNDFONTS = {  # the sound sets this project uses; others are left unseen for judging generalisation
    "timgm6mb-soundfont": "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "musescore-general-soundfont": "/usr/share/sounds/sf3/MuseScore_General.sf3",
}
INSTALL_HINT = (
    "install FluidSynth and a General MIDI soundfont, e.g. `sudo apt-get install --no-install-recommends "
    "fluidsynth timgm6mb-soundfont musescore-general-soundfont` (Debian/Ubuntu; `make system-deps` does it as "
    "root), `brew install fluid-synth` (macOS) or `conda install -c conda-forge fluidsynth`"
)
RENDER_RATE = 44100  # FluidSynth renders at this rate; the clips are resampled to `sampling_rate`
GAP_SECONDS = 3.0  # silence between consecutive clips in one rendering (reverb tails die out there)
TAIL_SECONDS = 0.3  # the last note of a clip ends this long before the clip does
TARGET_RMS_DB = -20.0  # loudness: RMS of the clip's active 50-ms frames, dB re full scale
ACTIVE_DB = -40.0  # frames within this many dB of the loudest frame count as active
MAX_PEAK = 0.95
DRUM_CHANNEL = 9  # General MIDI percussion (channel 10)

# General MIDI program names (0-based program numbers) of the programs used below, for the manifest.
GM_NAMES = {
    0: "Acoustic Grand Piano", 1: "Bright Acoustic Piano", 13: "Xylophone", 21: "Accordion", 23: "Tango Accordion",
    24: "Acoustic Guitar (nylon)", 25: "Acoustic Guitar (steel)", 32: "Acoustic Bass", 33: "Electric Bass (finger)",
    34: "Electric Bass (pick)", 40: "Violin", 42: "Cello", 56: "Trumpet", 58: "Tuba", 64: "Soprano Sax",
    65: "Alto Sax", 66: "Tenor Sax", 70: "Bassoon", 71: "Clarinet", 73: "Flute", 105: "Banjo", 106: "Shamisen",
    107: "Koto", 109: "Bagpipe", 110: "Fiddle",
}  # fmt: skip


@dataclass(frozen=True)
class Performer:
    """How one class is played: General MIDI program(s), range and style.

    programs: GM programs (0-based) a clip picks from (empty: percussion on channel 10, keys in `drum_keys`);
    pitch: lowest and highest MIDI note; beats: note lengths (in beats) the phrase picks from; gate: sounding
    fraction of a note's length, (low, high): legato near 1, detached / plucked lower; rest: chance that a note
    is a rest; tempo: beats per minute (low, high); velocity: MIDI velocity (low, high); style: "melody"
    (monophonic, stepwise on a scale), "chords" (strummed chords between melody notes), "tremolo" (long notes as
    rapid repeated plucks), "drums" (a kit groove with fills) or "hand_drums" (conga patterns); substitute: what
    stands in when GM has no program for the instrument.
    """

    programs: tuple[int, ...]
    pitch: tuple[int, int]
    beats: tuple[float, ...] = (0.5, 1.0)
    gate: tuple[float, float] = (0.85, 0.98)
    rest: float = 0.12
    tempo: tuple[float, float] = (72.0, 132.0)
    velocity: tuple[int, int] = (64, 110)
    style: str = "melody"
    chord_probability: float = 0.0
    drum_keys: tuple[int, ...] = ()
    substitute: str = ""


# fmt: off
PERFORMERS: dict[str, Performer] = {
    "accordion":       Performer((21, 23), (53, 81), beats=(0.5, 1.0, 1.5), style="chords", chord_probability=0.3),
    "acoustic_guitar": Performer((24, 25), (40, 76), beats=(0.5, 1.0), gate=(0.6, 0.95), style="chords", chord_probability=0.45),
    "bagpipe":         Performer((109,), (67, 81), beats=(0.5, 1.0, 2.0), gate=(0.97, 1.0), rest=0.04),
    "banjo":           Performer((105,), (50, 79), beats=(0.25, 0.5), gate=(0.4, 0.8), rest=0.08, tempo=(96.0, 150.0), style="chords", chord_probability=0.25),
    "bassoon":         Performer((70,), (34, 65), beats=(0.5, 1.0, 2.0), rest=0.15, tempo=(60.0, 110.0)),
    "cello":           Performer((42,), (36, 69), beats=(1.0, 1.5, 2.0), gate=(0.9, 1.0), rest=0.08, tempo=(56.0, 100.0)),
    "clarinet":        Performer((71,), (50, 84), beats=(0.5, 1.0), rest=0.12),
    "congas":          Performer((), (0, 0), beats=(0.25, 0.5), rest=0.2, tempo=(90.0, 130.0), style="hand_drums", drum_keys=(62, 63, 64)),
    "drum":            Performer((), (0, 0), beats=(0.25, 0.5), tempo=(80.0, 140.0), style="drums", drum_keys=(36, 38, 42, 46, 45, 48, 50, 49, 51)),
    "electric_bass":   Performer((33, 34), (28, 55), beats=(0.5, 1.0), gate=(0.6, 0.95), rest=0.15, tempo=(80.0, 130.0)),
    "erhu":            Performer((110,), (62, 93), beats=(0.5, 1.0, 2.0), gate=(0.95, 1.0), rest=0.08, tempo=(56.0, 100.0), substitute="Fiddle (GM has no erhu): a bowed string in the erhu's range"),
    "flute":           Performer((73,), (60, 93), beats=(0.5, 1.0, 1.5), rest=0.15),
    "guzheng":         Performer((107,), (38, 86), beats=(0.25, 0.5, 1.0), gate=(0.7, 1.0), rest=0.08, style="chords", chord_probability=0.15, substitute="Koto (GM has no guzheng): a plucked zither"),
    "piano":           Performer((0, 1), (36, 96), beats=(0.5, 1.0), gate=(0.7, 1.0), rest=0.08, style="chords", chord_probability=0.4),
    "pipa":            Performer((106,), (45, 84), beats=(0.25, 0.5, 1.0), gate=(0.6, 0.9), rest=0.08, style="tremolo", substitute="Shamisen (GM has no pipa): a plucked lute, long notes played with tremolo"),
    "saxophone":       Performer((64, 65, 66), (49, 80), beats=(0.5, 1.0), rest=0.12),
    "trumpet":         Performer((56,), (54, 82), beats=(0.5, 1.0), gate=(0.75, 0.95), rest=0.15),
    "tuba":            Performer((58,), (28, 58), beats=(1.0, 2.0), gate=(0.8, 0.95), rest=0.15, tempo=(60.0, 110.0)),
    "ukulele":         Performer((24,), (60, 81), beats=(0.25, 0.5), gate=(0.5, 0.8), rest=0.06, tempo=(90.0, 140.0), style="chords", chord_probability=0.6, substitute="Acoustic Guitar (nylon) (GM has no ukulele), strummed in the ukulele's high range"),
    "violin":          Performer((40,), (55, 96), beats=(0.5, 1.0, 1.5), gate=(0.9, 1.0), rest=0.08),
    "xylophone":       Performer((13,), (65, 96), beats=(0.25, 0.5), gate=(0.5, 0.8), rest=0.1, tempo=(90.0, 150.0)),
}
# fmt: on
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "pentatonic": (0, 2, 4, 7, 9)}


@dataclass(frozen=True)
class Note:
    start: float  # s from the clip's start
    duration: float  # s
    pitch: int  # MIDI note (percussion: the GM key)
    velocity: int


def _scale_pitches(low: int, high: int, tonic: int, scale: tuple[int, ...]) -> np.ndarray:
    return np.array([p for p in range(low, high + 1) if (p - tonic) % 12 in scale])


def _melodic_notes(performer: Performer, rng: np.random.Generator, seconds: float, beat: float) -> list[Note]:
    """A phrase: a random walk on a scale, mostly steps, some leaps, rests and breaths; chords / tremolo by style."""
    tonic = int(rng.integers(12))
    scale = SCALES[("major", "minor", "pentatonic")[rng.integers(3)]]
    pitches = _scale_pitches(*performer.pitch, tonic, scale)
    position = int(rng.integers(len(pitches) // 4, max(3 * len(pitches) // 4, len(pitches) // 4 + 1)))
    gate = rng.uniform(*performer.gate)
    notes, time, end = [], float(rng.uniform(0.0, 0.3)), seconds - TAIL_SECONDS
    while True:
        length = float(rng.choice(performer.beats)) * beat
        if time + length > end:
            break
        if notes and rng.random() < performer.rest:
            time += length
            continue
        step = int(rng.choice([-2, -1, 1, 2, 0, -4, 4, 3, -3], p=[0.12, 0.2, 0.2, 0.12, 0.08, 0.06, 0.06, 0.08, 0.08]))
        position = int(np.clip(position + step, 0, len(pitches) - 1))
        velocity = int(rng.integers(performer.velocity[0], performer.velocity[1] + 1))
        sounding = length * gate
        pitch = int(pitches[position])
        if performer.style == "tremolo" and length >= beat:  # long notes: rapid repeated plucks (12-16 per second)
            rate = rng.uniform(12.0, 16.0)
            for k in range(int(sounding * rate)):
                notes.append(Note(time + k / rate, 0.9 / rate, pitch, max(1, velocity - int(rng.integers(0, 20)))))
        elif performer.style == "chords" and rng.random() < performer.chord_probability:
            size = int(rng.integers(2, 5))  # a strummed chord: every other scale degree below the melody note
            chord = [int(pitches[i]) for i in range(position, max(position - 2 * size, -1), -2)][:size]
            strum = rng.uniform(0.008, 0.03) * (1 if rng.random() < 0.7 else -1)
            order = sorted(chord) if strum > 0 else sorted(chord, reverse=True)
            for k, note in enumerate(order):
                offset = abs(strum) * k
                notes.append(Note(time + offset, max(sounding - offset, 0.05), note, max(1, velocity - 6 * k)))
        else:
            notes.append(Note(time, sounding, pitch, velocity))
        time += length
    return notes


def _drum_notes(performer: Performer, rng: np.random.Generator, seconds: float, beat: float) -> list[Note]:
    """A kit groove (kick, snare, hi-hat in sixteenths) with fills on toms; or conga patterns (hand drums)."""
    notes, end = [], seconds - TAIL_SECONDS
    sixteenth = beat / 4
    steps = int(end / sixteenth)
    if performer.style == "hand_drums":
        mute, open_hi, low = performer.drum_keys
        pattern = [rng.choice([mute, open_hi, low, -1], p=[0.35, 0.3, 0.15, 0.2]) for _ in range(8)]
        for k in range(steps):
            key = int(pattern[k % 8]) if rng.random() > performer.rest else -1
            if rng.random() < 0.1:  # variation
                key = int(rng.choice([mute, open_hi, low]))
            if key >= 0:
                accent = 15 if k % 4 == 0 else 0
                velocity = int(np.clip(rng.integers(*performer.velocity) + accent, 1, 127))
                notes.append(Note(k * sixteenth + rng.normal(0, 0.004) + 0.01, sixteenth, key, velocity))
        return notes
    kick, snare, closed, opened, tom_high, tom_mid, tom_low, crash, ride = performer.drum_keys
    cymbal = closed if rng.random() < 0.7 else ride
    kick_pattern = [0, 8] if rng.random() < 0.5 else [0, 6, 8, 11]
    for k in range(steps):
        bar_step, bar = k % 16, k // 16
        time = k * sixteenth + 0.01 + rng.normal(0, 0.003)
        fill = (bar % 4 == 3) and bar_step >= 12
        hits = []
        if fill:
            hits.append((int(rng.choice([snare, tom_high, tom_mid, tom_low])), 100))
        else:
            if bar_step in kick_pattern:
                hits.append((kick, 105))
            if bar_step in (4, 12):
                hits.append((snare, 100))
            if bar_step % 2 == 0:
                hits.append((opened if (bar_step == 14 and rng.random() < 0.3) else cymbal, 75 if bar_step % 4 else 90))
        if bar_step == 0 and bar % 4 == 0 and k > 0:
            hits.append((crash, 100))
        for key, velocity in hits:
            velocity = int(np.clip(velocity + rng.integers(-15, 12), 1, 127))
            notes.append(Note(max(time, 0.0), sixteenth, key, velocity))
    return notes


def compose_clip(label: str, seconds: float, seed: int, index: int) -> dict:
    """The phrase of clip `index` of `label`: {"program", "tempo", "notes"} (depends only on its arguments)."""
    if label not in PERFORMERS:
        raise ValueError(f"Unknown instrument class {label!r}; use one of {', '.join(MUSIC21_LABELS)}.")
    performer = PERFORMERS[label]
    rng = np.random.default_rng([seed, MUSIC21_LABELS.index(label), index])
    tempo = float(rng.uniform(*performer.tempo))
    beat = 60.0 / tempo
    program = int(rng.choice(performer.programs)) if performer.programs else None
    if performer.style in ("drums", "hand_drums"):
        notes = _drum_notes(performer, rng, seconds, beat)
    else:
        notes = _melodic_notes(performer, rng, seconds, beat)
    return {"program": program, "tempo": tempo, "notes": notes}


# ------------------------------------------------------------------------------------------------------------------
# MIDI file and FluidSynth
# ------------------------------------------------------------------------------------------------------------------

TICKS_PER_SECOND = 960  # at the default tempo (120 bpm, 480 ticks per beat) a tick is 1/960 s


def _variable_length(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_file(clips: Sequence[tuple[float, int | None, list[Note]]]) -> bytes:
    """A type-0 Standard MIDI File (120 bpm, 480 ticks per beat) playing `clips` of (start s, program, notes):
    a program change (or, with program None, the percussion channel) at each clip's start, then its notes."""
    events = []  # (tick, order, bytes): note-offs before note-ons at the same tick
    for start, program, notes in clips:
        channel = DRUM_CHANNEL if program is None else 0
        tick = round(start * TICKS_PER_SECOND)
        events.append((tick, 0, bytes([0xB0 | channel, 123, 0])))  # all notes off
        if program is not None:
            events.append((tick, 1, bytes([0xC0 | channel, program])))
        for note in notes:
            on = round((start + note.start) * TICKS_PER_SECOND)
            off = max(on + 1, round((start + note.start + note.duration) * TICKS_PER_SECOND))
            events.append((on, 2, bytes([0x90 | channel, note.pitch, note.velocity])))
            events.append((off, 0, bytes([0x80 | channel, note.pitch, 0])))
    events.sort(key=lambda event: (event[0], event[1]))
    track, previous = bytearray(), 0
    for tick, _, data in events:
        track += _variable_length(tick - previous) + data
        previous = tick
    track += _variable_length(TICKS_PER_SECOND) + b"\xff\x2f\x00"  # end of track, a second after the last event
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def fluidsynth_executable() -> str:
    path = shutil.which("fluidsynth")
    if path is None:
        raise FileNotFoundError(f"FluidSynth is not installed (no `fluidsynth` on PATH): {INSTALL_HINT}.")
    return path


def available_soundfonts() -> dict[str, str]:
    """The Debian sound sets of `DEBIAN_SOUNDFONTS` that are installed: package -> path."""
    return {package: path for package, path in DEBIAN_SOUNDFONTS.items() if os.path.isfile(path)}


def _check_soundfont(path: str) -> str:
    if not os.path.isfile(path):
        found = available_soundfonts()
        hint = f"installed here: {', '.join(found.values())}" if found else INSTALL_HINT
        raise FileNotFoundError(f"The soundfont {path!r} does not exist ({hint}).")
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise ValueError(f"{path!r} is not a SoundFont file (.sf2/.sf3: a RIFF 'sfbk' file).")
    return path


def render_midi(midi: bytes, soundfont: str, rate: int = RENDER_RATE) -> np.ndarray:
    """Render a MIDI file with FluidSynth (reverb on, chorus off): mono float64 at `rate` Hz."""
    from scipy.io.wavfile import WavFileWarning

    executable = fluidsynth_executable()
    with tempfile.TemporaryDirectory(prefix="tribert-render-") as tmp:
        midi_path, wav_path = os.path.join(tmp, "in.mid"), os.path.join(tmp, "out.wav")
        with open(midi_path, "wb") as f:
            f.write(midi)
        command = [executable, "-ni", "-q", "-R", "1", "-C", "0", "-g", "0.4", "-r", str(rate), "-T", "wav",
                   "-O", "float", "-F", wav_path, soundfont, midi_path]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not os.path.isfile(wav_path):
            raise ChildProcessError(f"FluidSynth failed on {soundfont!r} (exit {result.returncode}): {result.stderr.strip()[-500:]}")
        with warnings.catch_warnings():  # FluidSynth's float WAVs carry a 'fact' chunk that scipy skips
            warnings.simplefilter("ignore", category=WavFileWarning)
            wave, got_rate = read_wav(wav_path)
    if got_rate != rate:
        raise ChildProcessError(f"FluidSynth wrote {got_rate} Hz instead of {rate} Hz.")
    return (wave.mean(axis=1) if wave.ndim == 2 else wave).astype(np.float64)


def normalize_loudness(wave: np.ndarray, sampling_rate: int) -> np.ndarray:
    """Scale to `TARGET_RMS_DB` RMS over the active 50-ms frames (within `ACTIVE_DB` of the loudest), peak at most
    `MAX_PEAK`. A silent clip raises a ValueError."""
    size = max(int(0.05 * sampling_rate), 1)
    frames = wave[: len(wave) // size * size].reshape(-1, size)
    rms = np.sqrt((frames**2).mean(axis=1))
    if rms.size == 0 or rms.max() <= 1e-6:
        raise ValueError("The rendered clip is silent: does the soundfont have this General MIDI program?")
    active = rms[rms >= rms.max() * 10 ** (ACTIVE_DB / 20)]
    gain = 10 ** (TARGET_RMS_DB / 20) / np.sqrt((active**2).mean())
    gain = min(gain, MAX_PEAK / float(np.abs(wave).max()))
    return wave * gain


# ------------------------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------------------------


def render_solos(
    output_dir: str,
    soundfonts: Sequence[str],
    classes: Sequence[str] | None = None,
    clips_per_class: int = 20,
    seconds: float = 24.0,
    seed: int = 0,
    sampling_rate: int = SAMPLING_RATE,
    progress: bool = True,
) -> dict:
    """Render `clips_per_class` solo clips of `seconds` s per class into `output_dir/<class>/<k>.wav`.

    Clip k of a class is `compose_clip(class, seconds, seed, k)` rendered with soundfonts[k % len(soundfonts)]
    (one FluidSynth run per class and soundfont, the clips one after another with `GAP_SECONDS` between them),
    mixed to mono, resampled to `sampling_rate` (`scipy.signal.resample_poly`) and loudness-normalised
    (`normalize_loudness`). Writes `output_dir/manifest.json` (every clip's program, soundfont, tempo and notes)
    and returns it. Resumable: a class whose `<class>/.rendered.json` matches the parameters is kept.
    """
    from math import gcd

    from scipy.signal import resample_poly
    from tqdm.auto import tqdm

    classes = list(MUSIC21_LABELS if classes is None else classes)
    unknown = [name for name in classes if name not in PERFORMERS]
    if unknown:
        raise ValueError(f"Unknown instrument class(es) {unknown}; use names from: {', '.join(MUSIC21_LABELS)}.")
    if not soundfonts:
        found = available_soundfonts()
        raise ValueError(
            "Give at least one --soundfont (a General MIDI .sf2/.sf3 file); "
            + (f"installed here: {', '.join(found.values())}" if found else INSTALL_HINT)
        )
    if clips_per_class < 1 or not seconds >= 1.0:
        raise ValueError(f"clips_per_class must be >= 1 and seconds >= 1, got {clips_per_class} and {seconds}.")
    soundfonts = [_check_soundfont(os.fspath(path)) for path in soundfonts]
    fluidsynth_executable()
    parameters = {
        "render_version": RENDER_VERSION, "seconds": seconds, "seed": seed, "sampling_rate": sampling_rate,
        "clips_per_class": clips_per_class,
        "soundfonts": [{"path": os.path.abspath(p), "name": os.path.basename(p), "bytes": os.path.getsize(p)} for p in soundfonts],
    }  # fmt: skip
    os.makedirs(output_dir, exist_ok=True)
    common = gcd(RENDER_RATE, sampling_rate)
    entries = []
    for label in tqdm(classes, desc="render solos", unit="class", disable=not progress):
        class_dir = os.path.join(output_dir, label)
        record_path = os.path.join(class_dir, ".rendered.json")
        if os.path.isfile(record_path):
            record = json.load(open(record_path))
            if record["parameters"] == parameters and all(
                os.path.isfile(os.path.join(output_dir, clip["path"])) for clip in record["clips"]
            ):
                entries += record["clips"]
                continue
        os.makedirs(class_dir, exist_ok=True)
        clips = [compose_clip(label, seconds, seed, k) for k in range(clips_per_class)]
        waves = {}
        for font_index, soundfont in enumerate(soundfonts):
            indices = list(range(font_index, clips_per_class, len(soundfonts)))
            if not indices:
                continue
            starts = [i * (seconds + GAP_SECONDS) for i in range(len(indices))]
            midi = midi_file([(start, clips[k]["program"], clips[k]["notes"]) for start, k in zip(starts, indices)])
            rendered = render_midi(midi, soundfont)
            length = round(seconds * RENDER_RATE)
            for start, k in zip(starts, indices):
                first = round(start * RENDER_RATE)
                piece = rendered[first : first + length]
                piece = np.pad(piece, (0, length - len(piece)))
                piece = resample_poly(piece, sampling_rate // common, RENDER_RATE // common)
                try:
                    waves[k] = normalize_loudness(piece, sampling_rate)
                except ValueError as error:
                    raise ValueError(f"{label} clip {k} with {soundfont!r}: {error}") from None
        class_entries = []
        for k, clip in enumerate(clips):
            path = f"{label}/{k}.wav"
            write_wav(os.path.join(output_dir, path), waves[k], sampling_rate)
            font = soundfonts[k % len(soundfonts)]
            program = clip["program"]
            class_entries.append({
                "path": path, "class": label, "index": k, "seed": [seed, MUSIC21_LABELS.index(label), k],
                "soundfont": os.path.basename(font), "channel": 10 if program is None else 1,
                "program": program, "program_name": "Standard drum kit" if program is None else GM_NAMES.get(program, ""),
                "substitute": PERFORMERS[label].substitute or None, "tempo": round(clip["tempo"], 2),
                "notes": [[round(n.start, 4), round(n.duration, 4), n.pitch, n.velocity] for n in clip["notes"]],
            })  # fmt: skip
        _atomic_json(record_path, {"parameters": parameters, "clips": class_entries})
        entries += class_entries
    manifest = {
        **parameters, "classes": classes,
        "note_columns": ["start_s", "duration_s", "midi_pitch_or_drum_key", "velocity"],
        "clips": entries,
    }  # fmt: skip
    _atomic_json(os.path.join(output_dir, "manifest.json"), manifest)
    return manifest


def _atomic_json(path: str, data) -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


__all__ = [
    "DEBIAN_SOUNDFONTS",
    "PERFORMERS",
    "Performer",
    "available_soundfonts",
    "compose_clip",
    "midi_file",
    "normalize_loudness",
    "render_midi",
    "render_solos",
]
