"""Generated songs: small deterministic multitrack songs for demos and offline tests.

Each song has the four MUSDB18 stems, 44.1 kHz stereo, made by plain additive and
subtractive synthesis so that each stem occupies the place a real one would:

- ``drums``: kick (pitch-swept sine), snare (noise burst plus a 180 Hz body) and
  hi-hat (high-passed noise) on a rock pattern with random fills and velocities.
- ``bass``: a sine plus a soft second harmonic on the chord roots and fifths
  (E1 to D#3, 41 to 156 Hz), nothing above 200 Hz.
- ``other``: sustained chords (triads or sevenths, G3 to F#5, 4 harmonics per
  voice) spread in the stereo field, about 200 to 3000 Hz.
- ``vocals``: a sung melody, a harmonic tone up to about 5 kHz with 5 to 6 Hz
  vibrato and vowel formants (Peterson & Barney 1952 averages), with rests.

Other stem names (``stems=("guitar", "piano", "speech")``) are played by one of
these four voices, or by a sum of them (`voices_of`: known names such as guitar,
piano or speech by their kind, ``accompaniment`` as drums + bass + other, any other
name by a hash of it); each stem is a new performance of its voices, so two stems
on one voice differ.

Tempo, key, mode, chord progression, levels and panning all come from the seed; the
same seed always gives bit-identical audio. Every stem lies on the 16-bit grid
(``k / 32768``) and the mixture is their exact float32 sum, peak-normalised to 0.9,
so the 16-bit files that `write_songs` writes (MUSDB18-HQ, trackfolder or
sourcefolder layout, wav or flac) hold exactly the arrays that `generate_song`
returns and ``mixture == sum of the stems`` holds in memory and on disk.
"""

from __future__ import annotations

import os
import pathlib
import zlib
from typing import Sequence

import numpy as np
import soundfile as sf
import tqdm

from mssjax import TARGETS, fileio
from mssjax.data import layouts
from mssjax.errors import ParameterError, check_choice, check_finite, check_positive_int

__all__ = ["generate_song", "write_songs", "song_name", "voices_of", "STEM_FILES", "VOICES", "WRITE_LAYOUTS",
           "FORMATS"]

# Shell: python -m mssjax data generate -o ROOT [--set n_train=8 --set n_test=4 --set seconds=10]
#        [--set stems=guitar,piano,speech --set layout=trackfolder]   (mssjax.cli)

STEM_FILES = ("mixture", "drums", "bass", "other", "vocals")
"""The stem file names of MUSDB18-HQ, in the order of MUSDB18's streams."""

VOICES = ("vocals", "drums", "bass", "other")
"""The synthesis voices, which are also MUSDB18's targets."""
_NAMED_VOICES = {
    "vocals": ("vocals",), "voice": ("vocals",), "speech": ("vocals",), "singing": ("vocals",), "choir": ("vocals",),
    "drums": ("drums",), "percussion": ("drums",), "kick": ("drums",), "snare": ("drums",), "bass": ("bass",),
    "other": ("other",), "guitar": ("other",), "piano": ("other",), "keys": ("other",), "synth": ("other",),
    "strings": ("other",), "accompaniment": ("drums", "bass", "other"), "instrumental": ("drums", "bass", "other"),
}
WRITE_LAYOUTS = ("musdb18hq", "trackfolder", "sourcefolder")
FORMATS = ("wav", "flac")
_PEAK = 0.9
_INT16_SCALE = 32768.0
_VIBRATO_RATE = (5.0, 6.0)  # Hz
_VIBRATO_DEPTH = (0.3, 0.6)  # semitones
_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
# Chord progressions as scale degrees (0-based), one chord per bar.
_PROGRESSIONS = ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 4, 3), (1, 4, 0, 0), (0, 6, 5, 4))
# Vowel formants (F1, F2, F3) in Hz, after Peterson & Barney (1952).
_VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240],
                    [530, 1840, 2480], [570, 840, 2410]], dtype=np.float64)


def song_name(subset: str, index: int) -> str:
  """The track name of generated song ``index`` of ``subset`` ("train" or "test")."""
  return f"Generated - {subset.capitalize()} Song {index:03d}"


def _midi_hz(midi):
  return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _fold(midi, *, low, span=12):
  """Moves MIDI notes by octaves into ``[low, low + span)``: E1..D#2 (bass) for low=28."""
  return low + (np.asarray(midi) - low) % span


def _pan(mono, position):
  """Constant-power pan of ``mono [n]`` to ``[2, n]``; ``position`` in [-1 (left), 1]."""
  angle = (position + 1.0) * np.pi / 4.0
  return np.stack([np.cos(angle) * mono, np.sin(angle) * mono])


def _note_grid(onsets, n_samples):
  """For each sample, the index of the last onset, the time since it and the time to the next.

  Args:
    onsets: sorted int sample positions ``[n_notes]``, the first one 0.
    n_samples: total length.

  Returns:
    ``(note, elapsed, remaining)``, each int ``[n_samples]``; ``remaining`` counts
    samples to the next onset (or to the end).
  """
  positions = np.arange(n_samples)
  note = np.searchsorted(onsets, positions, side="right") - 1
  ends = np.append(onsets[1:], n_samples)
  return note, positions - onsets[note], ends[note] - positions


def _release(remaining, seconds, sample_rate):
  """A linear fade to zero over the last ``seconds`` of each note (no clicks at note changes)."""
  return np.clip(remaining / (seconds * sample_rate), 0.0, 1.0)


def _harmonic_tone(f0, amplitudes):
  """Additive synthesis: ``sum_k a_k(t) sin(k phi(t))``, ``phi = 2 pi cumsum(f0)``.

  The harmonics come from the Chebyshev recurrence
  ``sin(k phi) = 2 cos(phi) sin((k-1) phi) - sin((k-2) phi)``: one sine and one
  cosine for all K harmonics.

  Args:
    f0: instantaneous fundamental in cycles per sample ``[n]``.
    amplitudes: ``[n_harmonics, n]`` or ``[n_harmonics, 1]`` harmonic amplitudes.

  Returns:
    ``[n]`` float64.
  """
  phase = 2.0 * np.pi * (np.cumsum(f0) % 1.0)
  previous, current, twice_cos = np.zeros_like(phase), np.sin(phase), 2.0 * np.cos(phase)
  out = amplitudes[0] * current
  for amplitude in amplitudes[1:]:
    previous = np.subtract(twice_cos * current, previous, out=previous)
    previous, current = current, previous
    out += amplitude * current
  return out


class _Song:
  """The musical plan of one song: tempo, key, chords, drawn from one generator."""

  def __init__(self, rng, seconds, sample_rate):
    self.rng = rng
    self.sample_rate = sample_rate
    self.n_samples = int(round(seconds * sample_rate))
    self.tempo = float(rng.uniform(84.0, 140.0))
    self.beat = 60.0 / self.tempo * sample_rate  # samples per beat
    self.tonic = int(rng.integers(36, 48))  # MIDI, C2..B2
    self.scale = _MAJOR if rng.random() < 0.5 else _MINOR
    self.progression = _PROGRESSIONS[rng.integers(len(_PROGRESSIONS))]
    self.n_beats = int(np.ceil(self.n_samples / self.beat)) + 1

  def degree(self, degree, octave=0):
    """MIDI note of scale ``degree`` (any int) above the tonic, ``octave`` octaves up."""
    degree = np.asarray(degree)
    return self.tonic + 12 * (octave + degree // 7) + self.scale[degree % 7]

  def chord_degree(self, beat):
    """Scale degree of the chord root at (integer) ``beat``; one chord per 4-beat bar."""
    bar = np.asarray(beat) // 4
    return np.asarray(self.progression)[bar % len(self.progression)]

  def onsets(self, beats):
    """Sample positions of (fractional) ``beats`` inside the song."""
    positions = np.round(np.asarray(beats) * self.beat).astype(np.int64)
    return positions[positions < self.n_samples]


def _place(template, positions, gains, n_samples):
  """Sum of ``template`` copies starting at ``positions`` with ``gains`` (sparse convolution)."""
  impulses = np.zeros(n_samples)
  np.add.at(impulses, positions, gains)
  # Imported here: scipy.signal costs about 1 s of every process's start-up.
  import scipy.signal  # pylint: disable=import-outside-toplevel
  return scipy.signal.oaconvolve(impulses, template)[:n_samples]


def _drum_templates(rng, sample_rate):
  t = np.arange(int(0.35 * sample_rate)) / sample_rate
  sweep = 45.0 + 110.0 * np.exp(-t / 0.03)
  kick = np.sin(2 * np.pi * np.cumsum(sweep) / sample_rate) * np.exp(-t / 0.12)
  noise = rng.standard_normal(t.size)
  body = np.sin(2 * np.pi * 180.0 * t) * np.exp(-t / 0.05)
  snare = (0.6 * np.diff(noise, prepend=0.0) * np.exp(-t / 0.07) + 0.7 * body)
  hat = np.diff(np.diff(noise[::-1], prepend=0.0), prepend=0.0) * np.exp(-t / 0.018)
  taper = np.minimum((t[-1] - t) / 0.05, 1.0)  # no step where a template ends
  return kick * taper, snare / np.abs(snare).max() * taper, hat / np.abs(hat).max() * taper


def _drums(song):
  rng, n = song.rng, song.n_samples
  kick, snare, hat = _drum_templates(rng, song.sample_rate)
  beats = np.arange(song.n_beats)
  kick_beats = np.concatenate([beats[beats % 2 == 0], beats[rng.random(beats.size) < 0.25] + 0.5])
  snare_beats = np.concatenate([beats[beats % 2 == 1], beats[rng.random(beats.size) < 0.1] + 0.75])
  hat_step = 0.5 if rng.random() < 0.7 else 0.25
  hat_beats = np.arange(0.0, song.n_beats, hat_step)
  parts = []
  for template, hits, level, pan in ((kick, kick_beats, 1.0, 0.0), (snare, snare_beats, 0.7, 0.1),
                                     (hat, hat_beats, 0.25, rng.uniform(-0.6, 0.6))):
    positions = song.onsets(hits)
    gains = level * rng.uniform(0.7, 1.0, positions.size)
    parts.append(_pan(_place(template, positions, gains, n), pan))
  return sum(parts)


def _bass(song):
  rng, n, sr = song.rng, song.n_samples, song.sample_rate
  step = 1.0 if rng.random() < 0.5 else 0.5
  beats = np.arange(0.0, song.n_beats, step)
  onsets = song.onsets(beats)
  roots = song.chord_degree(np.floor(beats[:onsets.size]).astype(int))
  offsets = rng.choice([0, 0, 0, 4, 7], size=onsets.size)  # root, or fifth / octave
  midi = _fold(song.degree(roots + np.where(offsets == 4, 4, 0)), low=28) + np.where(offsets == 7, 12, 0)
  note, elapsed, remaining = _note_grid(onsets, n)
  f0 = _midi_hz(midi)[note] / sr
  envelope = (np.minimum(elapsed / (0.005 * sr), 1.0) * np.exp(-elapsed / (0.6 * sr))
              * _release(remaining, 0.01, sr))
  second = np.where(2 * f0 * sr < 200.0, 0.3, 0.0)
  tone = _harmonic_tone(f0, np.stack([np.ones(n), second])) * envelope
  return _pan(tone, rng.uniform(-0.1, 0.1))


def _other(song):
  """Chords: one voicing per bar, 3-4 voices in octave 4, each panned apart."""
  rng, n, sr = song.rng, song.n_samples, song.sample_rate
  bars = np.arange(0, song.n_beats, 4)
  onsets = song.onsets(bars)
  note, elapsed, remaining = _note_grid(onsets, n)
  roots = song.chord_degree(bars[:onsets.size])
  seventh = rng.random() < 0.4
  intervals = (0, 2, 4, 6) if seventh else (0, 2, 4)
  envelope = (np.minimum(elapsed / (0.08 * sr), 1.0) * (0.6 + 0.4 * np.exp(-elapsed / (0.8 * sr)))
              * _release(remaining, 0.05, sr))
  harmonics = (1.0 / np.arange(1, 5) ** 1.5)[:, None]
  out = np.zeros((2, n))
  for voice, interval in enumerate(intervals):
    midi = _fold(song.degree(roots + interval), low=55, span=24)
    tone = _harmonic_tone(_midi_hz(midi)[note] / sr, harmonics) * envelope
    out += _pan(tone, np.linspace(-0.7, 0.7, len(intervals))[voice])
  return out


def _melody(song):
  """Note onsets (samples), MIDI pitches, vowel indices and a sung/rest flag."""
  rng = song.rng
  durations = rng.choice([0.5, 1.0, 1.0, 1.5, 2.0], size=4 * song.n_beats)
  beats = np.concatenate([[0.0], np.cumsum(durations)])
  beats = beats[beats < song.n_beats]
  onsets = song.onsets(beats)
  steps = rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3], size=onsets.size)
  degrees = np.clip(np.cumsum(steps), -3, 9) + 7  # around the tonic's upper octave
  midi = song.degree(degrees, octave=1)
  sung = rng.random(onsets.size) < 0.75
  sung[0] = rng.random() < 0.5
  return onsets, midi, rng.integers(len(_VOWELS), size=onsets.size), sung


def _formant_gains(f0, vowels, n_harmonics):
  """Harmonic amplitudes of a source-filter voice: -3 dB/oct source, 3 formant peaks.

  Args:
    f0: fundamental of each note in Hz ``[n_notes]``.
    vowels: vowel index of each note ``[n_notes]``.
    n_harmonics: number of harmonics K.

  Returns:
    ``[n_notes, K]`` amplitudes, zero above 5 kHz.
  """
  frequencies = f0[:, None] * np.arange(1, n_harmonics + 1)  # [n_notes, K]
  formants = _VOWELS[vowels][:, None, :]  # [n_notes, 1, 3]
  bandwidths = np.array([80.0, 110.0, 160.0])
  peaks = 1.0 / (1.0 + ((frequencies[..., None] - formants) / bandwidths) ** 2)
  gains = (0.05 + peaks @ np.array([1.0, 0.8, 0.5])) * np.sqrt(f0[:, None] / frequencies)
  return gains * (frequencies < 5000.0)


def _vocals(song):
  rng, n, sr = song.rng, song.n_samples, song.sample_rate
  onsets, midi, vowels, sung = _melody(song)
  note, elapsed, remaining = _note_grid(onsets, n)
  seconds = elapsed / sr
  rate, depth = rng.uniform(*_VIBRATO_RATE), rng.uniform(*_VIBRATO_DEPTH)
  vibrato = depth * np.minimum(seconds / 0.3, 1.0) * np.sin(2 * np.pi * rate * np.arange(n) / sr)
  f0_hz = _midi_hz(midi[note] + vibrato)
  gains = _formant_gains(_midi_hz(midi), vowels, n_harmonics=12).T[:, note]  # [K, n]
  envelope = np.minimum(seconds / 0.04, 1.0) * _release(remaining, 0.06, sr) * sung[note]
  tone = _harmonic_tone(f0_hz / sr, gains) * envelope
  return _pan(tone, rng.uniform(-0.15, 0.15))


def _rms(x):
  return float(np.sqrt(np.mean(np.square(x)))) or 1.0


def voices_of(name: str) -> tuple[str, ...]:
  """The synthesis voices (`VOICES`) that play stem ``name``: a known name's, else one chosen by a
  hash of the name (CRC-32), the same in every process."""
  return _NAMED_VOICES.get(name.lower(), (VOICES[zlib.crc32(name.encode()) % len(VOICES)],))


def generate_song(*, seed: int, seconds: float, sample_rate: int = 44100,
                  stems: Sequence[str] = TARGETS) -> dict[str, np.ndarray]:
  """Generates one multitrack song.

  Args:
    seed: non-negative int; the same seed gives bit-identical audio.
    seconds: duration in seconds (positive).
    sample_rate: sampling rate in Hz.
    stems: the stem names, played by `voices_of` each, made in this order.

  Returns:
    dict with each of ``stems`` and "mixture", each float32 ``[2, n_samples]`` with
    ``n_samples = round(seconds * sample_rate)``. The stems lie on the 16-bit grid,
    ``mixture`` is exactly their sum in the order of ``stems``, and every peak is at
    most 0.9.

  Raises:
    ParameterError: for a negative seed, a non-positive duration or rate, or bad stem names.
  """
  _check_count("seed", seed)
  check_finite("seconds", seconds, minimum=0, strict=True)
  check_positive_int("sample_rate", sample_rate)
  stems = layouts.check_targets(stems)
  song = _Song(np.random.default_rng(seed), seconds, sample_rate)
  synths = {"vocals": _vocals, "drums": _drums, "bass": _bass, "other": _other}
  levels_db = {"vocals": (-1.0, 2.0), "drums": (-2.0, 1.0), "bass": (-3.0, 0.0), "other": (-5.0, -2.0)}
  out = {}
  for name in stems:
    voices = voices_of(name)
    audio = synths[voices[0]](song)
    for voice in voices[1:]:
      audio = audio + synths[voice](song)
    out[name] = audio / _rms(audio) * 10.0 ** (song.rng.uniform(*levels_db[voices[0]]) / 20.0)
  return _normalise(out)


def _normalise(stems):
  """Scales all stems by one factor so every stem and the sum peak at most 0.9; 16-bit grid."""
  total = sum(stems.values())
  peak = max([np.abs(total).max()] + [np.abs(x).max() for x in stems.values()])
  scale = (_PEAK * _INT16_SCALE - len(stems)) / peak  # room for the stems' rounding in the sum
  out = {name: (np.round(x * scale) / _INT16_SCALE).astype(np.float32) for name, x in stems.items()}
  mixture = None
  for x in out.values():  # in the order of the stems, one float32 addition at a time
    mixture = x if mixture is None else mixture + x
  out["mixture"] = mixture
  if np.abs(out["mixture"]).max() >= 1.0:  # rounding cannot push 0.9 past 1, but be explicit
    raise AssertionError("mixture peak reached full scale")
  return out


def _check_count(name, value):
  """Raises `ParameterError` unless ``value`` is an integer >= 0 (a seed or a song count)."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
    raise ParameterError(f"{name}={value!r} must be a non-negative integer")


def _song_seed(seed, subset, index):
  subset_id = {"train": 0, "test": 1, "valid": 2}[subset]
  return int(np.random.SeedSequence((seed, subset_id, index)).generate_state(1)[0])


def _write_audio(path, audio, sample_rate):
  """Writes float32 ``[2, n]`` on the 16-bit grid as 16-bit PCM (wav or flac by the suffix), exactly, atomically."""
  pcm = np.round(audio.T * _INT16_SCALE).astype(np.int16)
  with fileio.atomic_path(path) as temporary:
    sf.write(temporary, pcm, sample_rate, subtype="PCM_16", format=path.suffix[1:].upper())


def _song_files(root, layout, subset, index, stems, mixture, audio_format):
  """``{name: path}`` of song ``index``'s files (the track folder's, or one per stem folder)."""
  name = song_name(subset, index)
  if layout == "sourcefolder":
    return {stem: root / subset / stem / f"{name} - {stem}.{audio_format}" for stem in stems}
  names = (("mixture",) if mixture else ()) + tuple(stems)
  return {stem: root / subset / name / f"{stem}.{audio_format}" for stem in names}


def _check_write_layout(layout, stems, mixture, audio_format):
  check_choice("layout", layout, WRITE_LAYOUTS)
  check_choice("audio_format", audio_format, FORMATS)
  if layout == "musdb18hq" and (set(stems) != set(TARGETS) or not mixture or audio_format != "wav"):
    raise ParameterError(f"layout='musdb18hq' holds MUSDB18's stems {TARGETS} and a mixture as wav; got "
                         f"stems={tuple(stems)}, mixture={mixture}, audio_format={audio_format!r}: use 'trackfolder'")


def write_songs(root: str | os.PathLike, *, n_train: int, n_test: int, seconds: float, seed: int = 0,
                sample_rate: int = 44100, progress: bool = False, stems: Sequence[str] = TARGETS,
                layout: str = "musdb18hq", n_valid: int = 0, mixture: bool = True,
                audio_format: str = "wav") -> list[pathlib.Path]:
  """Writes generated songs in a dataset layout (`mssjax.data.layouts`).

  - "musdb18hq": ``root/SUBSET/NAME/{mixture,drums,bass,other,vocals}.wav``;
  - "trackfolder": ``root/SUBSET/NAME/{STEM,...}.EXT`` (and ``mixture.EXT`` unless
    ``mixture`` is False);
  - "sourcefolder": ``root/SUBSET/STEM/NAME - STEM.EXT``, one file per song and stem.

  16-bit PCM stereo. Song ``i`` of a subset is `generate_song` with a seed derived
  from ``(seed, subset, i)``, so adding songs never changes the existing ones.
  Files already present are skipped (re-running is cheap and resumes an
  interrupted run); every file is written atomically (`mssjax.fileio`).

  Args:
    root: output folder (created).
    n_train: number of training songs (>= 0).
    n_test: number of test songs (>= 0).
    seconds: duration of each song in seconds.
    seed: base seed.
    sample_rate: sampling rate in Hz.
    progress: show a progress bar.
    stems: the stem names (`generate_song`).
    layout: one of `WRITE_LAYOUTS`.
    n_valid: number of songs in a ``valid`` subset folder (>= 0).
    mixture: write the mixture file (track layouts).
    audio_format: "wav" or "flac".

  Returns:
    list of the songs' track folders (a sourcefolder: each song's first stem file),
    train first, then valid and test, in index order.

  Raises:
    ParameterError: for a negative song count, a layout that cannot hold the stems
      (musdb18hq: MUSDB18's, with a mixture, as wav), or bad song settings (`generate_song`).
  """
  _check_count("n_train", n_train)
  _check_count("n_test", n_test)
  _check_count("n_valid", n_valid)
  stems = layouts.check_targets(stems)
  _check_write_layout(layout, stems, mixture, audio_format)
  root = pathlib.Path(root)
  songs = [(subset, index) for subset, count in (("train", n_train), ("valid", n_valid), ("test", n_test))
           for index in range(count)]
  written = []
  for subset, index in tqdm.tqdm(songs, desc="songs", unit="song", disable=not progress):
    files = _song_files(root, layout, subset, index, stems, mixture, audio_format)
    first = next(iter(files.values()))
    written.append(first if layout == "sourcefolder" else first.parent)
    if all(path.is_file() for path in files.values()):
      continue
    song = generate_song(seed=_song_seed(seed, subset, index), seconds=seconds, sample_rate=sample_rate,
                         stems=stems)
    for stem, path in files.items():
      if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_audio(path, song[stem], sample_rate)
  return written
