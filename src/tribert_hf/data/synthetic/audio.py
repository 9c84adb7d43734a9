"""Synthesised sound: each instrument class's timbre (`TIMBRES`), random melodies and their synthesis.

Times in seconds, pitches as MIDI note numbers (69 = A4 = 440 Hz), audio as mono float32 at `sampling_rate` Hz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


SOURCE_PEAK = 0.5  # every source (synthesised or from a clip) is normalised to this peak
REST_PROBABILITY = 0.15  # chance that a note (after the first) is a rest


@dataclass(frozen=True)
class Timbre:
    """How an instrument class sounds (times in seconds, pitches in MIDI note numbers)."""

    pitch: tuple[int, int]  # lowest and highest note of the melody
    partials: tuple[float, ...]  # frequencies of the partials, as multiples of the fundamental
    rolloff: float  # amplitude of a partial = ratio ** -rolloff
    adsr: tuple[float, float, float, float]  # attack (s), decay time constant (s), sustain level (0-1), release (s)
    damping: float = 0.0  # decay time of a partial = decay / ratio ** damping: struck/plucked highs die first
    vibrato: tuple[float, float] = (0.0, 0.0)  # rate (Hz), depth (semitones)
    notes: tuple[float, ...] = (0.25, 0.5)  # note lengths (s) the melody picks from
    noise: float = 0.0  # enveloped noise, relative to the partials (breath, drum skin)
    noise_cutoff: float = 4000.0  # Hz: the noise is low-passed (two poles) at this frequency


def _harmonics(count: int) -> tuple[float, ...]:
    return tuple(float(k) for k in range(1, count + 1))


def _odd_harmonics(count: int) -> tuple[float, ...]:
    return tuple(float(k) for k in range(1, 2 * count, 2))


BAR_MODES = (1.0, 2.76, 5.40, 8.93)  # free vibrating bar (xylophone): inharmonic
MEMBRANE_MODES = (1.0, 1.59, 2.14, 2.30, 2.65, 2.92)  # circular membrane (drums): inharmonic

# fmt: off
TIMBRES: dict[str, Timbre] = {
    #                  pitch     partials              rolloff  attack decay sustain release  (plucked: sustain 0)
    "accordion":       Timbre((55, 79), _harmonics(12),     0.7, (0.04, 0.20, 0.80, 0.08), vibrato=(5.5, 0.05), notes=(0.5, 0.75, 1.0), noise=0.01),
    "acoustic_guitar": Timbre((40, 71), _harmonics(10),     1.2, (0.003, 0.60, 0.0, 0.05), damping=0.8),
    "bagpipe":         Timbre((67, 81), _harmonics(14),     0.5, (0.03, 0.10, 0.95, 0.05), notes=(0.25, 0.5, 1.0), noise=0.02),
    "banjo":           Timbre((55, 79), _harmonics(12),     0.9, (0.002, 0.25, 0.0, 0.03), damping=1.0, notes=(0.125, 0.25)),
    "bassoon":         Timbre((34, 60), _harmonics(10),     1.0, (0.05, 0.20, 0.80, 0.10), vibrato=(5.0, 0.08), notes=(0.5, 1.0)),
    "cello":           Timbre((36, 60), _harmonics(10),     1.0, (0.08, 0.30, 0.85, 0.15), vibrato=(5.5, 0.20), notes=(0.75, 1.0, 1.5)),
    "clarinet":        Timbre((50, 77), _odd_harmonics(9),  1.0, (0.04, 0.10, 0.90, 0.08), notes=(0.5, 0.75)),
    "congas":          Timbre((45, 57), MEMBRANE_MODES,     0.8, (0.001, 0.12, 0.0, 0.02), damping=1.0, notes=(0.125, 0.25, 0.375), noise=0.3, noise_cutoff=1500.0),
    "drum":            Timbre((40, 50), MEMBRANE_MODES,     0.6, (0.001, 0.20, 0.0, 0.02), damping=1.0, notes=(0.25, 0.5), noise=1.5, noise_cutoff=2500.0),
    "electric_bass":   Timbre((28, 52), _harmonics(6),      1.5, (0.005, 0.80, 0.2, 0.05), damping=0.5),
    "erhu":            Timbre((62, 86), _harmonics(8),      0.8, (0.06, 0.20, 0.90, 0.10), vibrato=(6.0, 0.35), notes=(0.5, 0.75, 1.0)),
    "flute":           Timbre((72, 96), _harmonics(4),      2.0, (0.06, 0.10, 0.90, 0.10), vibrato=(5.0, 0.10), notes=(0.25, 0.5, 0.75), noise=0.04),
    "guzheng":         Timbre((50, 86), _harmonics(8),      1.1, (0.002, 0.90, 0.0, 0.05), damping=0.6, vibrato=(4.0, 0.15)),
    "piano":           Timbre((40, 84), _harmonics(10),     1.3, (0.002, 1.00, 0.0, 0.10), damping=0.6),
    "pipa":            Timbre((55, 84), _harmonics(9),      0.9, (0.002, 0.15, 0.0, 0.03), damping=1.0, notes=(0.125, 0.25)),
    "saxophone":       Timbre((49, 80), _harmonics(12),     0.8, (0.04, 0.15, 0.85, 0.08), vibrato=(5.0, 0.12), notes=(0.25, 0.5, 0.75), noise=0.02),
    "trumpet":         Timbre((55, 82), _harmonics(14),     0.6, (0.03, 0.10, 0.85, 0.06), vibrato=(5.5, 0.08)),
    "tuba":            Timbre((29, 53), _harmonics(8),      1.4, (0.06, 0.20, 0.80, 0.10), notes=(0.5, 1.0)),
    "ukulele":         Timbre((60, 81), _harmonics(7),      1.3, (0.002, 0.30, 0.0, 0.03), damping=1.0, notes=(0.125, 0.25)),
    "violin":          Timbre((55, 91), _harmonics(12),     0.8, (0.06, 0.20, 0.85, 0.10), vibrato=(6.0, 0.25), notes=(0.5, 0.75)),
    "xylophone":       Timbre((65, 96), BAR_MODES,          1.0, (0.001, 0.18, 0.0, 0.02), damping=1.5, notes=(0.125, 0.25, 0.375)),
}
# fmt: on


@dataclass(frozen=True)
class Melody:
    """A monophonic note sequence: arrays of shape (notes,); times in seconds, pitches as MIDI numbers."""

    starts: np.ndarray
    lengths: np.ndarray
    pitches: np.ndarray
    sounding: np.ndarray  # bool: False for a rest
    velocities: np.ndarray  # 0.7-1.0

    @property
    def onsets(self) -> np.ndarray:
        """Start times (s) of the sounding notes, shape (onsets,)."""
        return self.starts[self.sounding]


def random_melody(timbre: Timbre, rng: np.random.Generator, duration: float) -> Melody:
    """A random walk over the class's pitch range (steps of up to 4 semitones), starting in the first 0.25 s."""
    low, high = timbre.pitch
    starts, lengths, pitches, sounding = [], [], [], []
    time = float(rng.uniform(0.0, 0.25))
    pitch = int(rng.integers(low, high + 1))
    while time < duration:
        starts.append(time)
        lengths.append(float(rng.choice(timbre.notes)))
        pitches.append(pitch)
        sounding.append(len(starts) == 1 or bool(rng.random() >= REST_PROBABILITY))
        time += lengths[-1]
        pitch += int(rng.integers(-4, 5))
        if pitch > high:  # reflect at the ends of the range
            pitch = 2 * high - pitch
        elif pitch < low:
            pitch = 2 * low - pitch
        pitch = min(max(pitch, low), high)
    return Melody(
        starts=np.array(starts),
        lengths=np.array(lengths),
        pitches=np.array(pitches, dtype=np.float64),
        sounding=np.array(sounding),
        velocities=rng.uniform(0.7, 1.0, len(starts)),
    )


def synthesize(
    timbre: Timbre, melody: Melody, num_samples: int, sampling_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """The melody played with the timbre: float32 (num_samples,), peak `SOURCE_PEAK`."""
    from scipy.signal import lfilter

    time = np.arange(num_samples) / sampling_rate
    note = np.maximum(np.searchsorted(melody.starts, time, side="right") - 1, 0)
    age = time - melody.starts[note]  # s since the note started (negative before the first note)
    gain = np.where(age >= 0, melody.sounding[note] * melody.velocities[note], 0.0)
    age = np.maximum(age, 0.0)
    f0 = 440.0 * 2.0 ** ((melody.pitches[note] - 69.0) / 12.0)
    rate, depth = timbre.vibrato
    vibrato = depth * np.minimum(age / 0.3, 1.0) * np.sin(2 * np.pi * rate * time + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0 * 2.0 ** (vibrato / 12.0)) / sampling_rate

    ratios = np.array(timbre.partials)[:, None]  # (partials, 1)
    attack, decay, sustain, release = timbre.adsr
    rise = np.clip(age / attack, 0.0, 1.0)
    fall = np.clip((melody.lengths[note] - age) / release, 0.0, 1.0)
    decay_times = decay / ratios**timbre.damping
    envelope = rise * fall * (sustain + (1 - sustain) * np.exp(-np.maximum(age - attack, 0.0) / decay_times))
    amplitude = ratios**-timbre.rolloff * (ratios * f0 < 0.45 * sampling_rate)  # no partials above Nyquist
    start_phase = rng.uniform(0, 2 * np.pi, (len(ratios), 1))
    wave = (amplitude * envelope * np.sin(ratios * phase + start_phase)).sum(axis=0)
    pole = np.exp(-2 * np.pi * timbre.noise_cutoff / sampling_rate)
    noise = lfilter([(1.0 - pole) ** 2], [1.0, -2.0 * pole, pole**2], rng.standard_normal(num_samples))
    wave += timbre.noise * envelope[0] * noise / noise.std()
    wave *= gain
    return (wave * (SOURCE_PEAK / np.abs(wave).max())).astype(np.float32)
