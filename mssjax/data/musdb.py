"""Readers for MUSDB18 and MUSDB18-HQ (Rafii et al. 2017, 2019).

Two layouts, told apart by what is on disk:

- ``"musdb18"``: ``ROOT/{train,test}/NAME.stem.mp4``, five AAC streams in the
  order mixture, drums, bass, other, vocals;
- ``"musdb18hq"``: ``ROOT/{train,test}/NAME/{mixture,drums,bass,other,vocals}.wav``.

`load_tracks` lists the tracks of a subset (and of MUSDB18's standard
train / valid split of the training subset) as lazy `Track` objects: nothing is
decoded until a stem is asked for.

Tracks give the field's samples by default (``decoding="musdb"``): what the
``musdb`` package (stempeg, ffmpeg ``s16le``) gives, against which every
published MUSDB18 figure was computed: the AAC streams of ``.stem.mp4`` files
rounded to 16-bit values at ffmpeg's length (the end padding kept: 300032
samples for a preview whose container declares 299880), and MUSDB18-HQ's
16-bit wavs as stored. ``decoding="float"`` keeps the AAC decoder's float
output cut to the declared length (see `mssjax.audio.read`). The choice
matters for evaluation: BSSEval v4's SIR, SAR and ISR move by several dB
between the two on the same estimate (SDR does not).
"""

from __future__ import annotations

import os
import pathlib
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from mssjax import TARGETS
from mssjax import audio
from mssjax.errors import DataError, ParameterError, check_choice

__all__ = [
    "STEM_NAMES", "SUBSETS", "SPLITS", "LAYOUTS", "DECODINGS", "SAMPLE_RATE", "VALIDATION_TRACKS",
    "Entry", "Track", "detect_layout", "load_tracks", "scan",
]

STEM_NAMES = ("mixture", "drums", "bass", "other", "vocals")
"""Stems of a track, in the stream order of a MUSDB18 ``.stem.mp4``."""

SUBSETS = ("train", "test")
SPLITS = ("train", "valid")
LAYOUTS = ("musdb18", "musdb18hq")
DECODINGS = ("musdb", "float")
"""How `Track` decodes ``.stem.mp4`` files: the ``musdb`` package's 16-bit samples
at ffmpeg's length, or the decoder's float output at the declared length."""
SAMPLE_RATE = 44100
STEM_SUFFIX = ".stem.mp4"

VALIDATION_TRACKS = (
    "Actions - One Minute Smile",
    "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies",
    "Patrick Talbot - A Reason To Leave",
    "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero",
    "Fergessen - Nos Palpitants",
    "Leaf - Summerghost",
    "Skelpolu - Human Mistakes",
    "Young Griffo - Pennies",
    "ANiMAL - Rockshow",
    "James May - On The Line",
    "Meaxic - Take A Step",
    "Traffic Experiment - Sirens",
)
"""MUSDB18's 14 validation tracks, taken from the training subset (the ``musdb``
package's ``configs/mus.yaml``, ``validation_tracks``)."""


class Track:
  """One MUSDB18 track; its audio is read when asked.

  Attributes:
    name: "Artist - Title".
    expected_rate: the sample rate every file must have (Hz).
    subset: "train" or "test".
    path: the ``.stem.mp4`` file (musdb18) or the track's folder (musdb18hq).
    layout: "musdb18" or "musdb18hq".
    cache: keep decoded stems in memory (a full MUSDB18 track is ~0.4 GB of
      float32 over five stems, so this is off by default).
    decoding: "musdb" (default: the ``musdb`` package's samples, 16-bit values
      at ffmpeg's length) or "float" (see `DECODINGS`).
  """

  target_names = TARGETS
  """The stems `targets` gives, in order (`mssjax.TARGETS`)."""
  missing = ()
  """Targets without a file (none: a MUSDB18 track that lacks one is refused)."""

  def __init__(self, name: str, subset: str, path: str | os.PathLike, layout: str, *,
               sample_rate: int = SAMPLE_RATE, cache: bool = False, decoding: str = "musdb"):
    check_choice("layout", layout, LAYOUTS)
    check_choice("decoding", decoding, DECODINGS)
    self.name, self.subset, self.path, self.layout = name, subset, pathlib.Path(path), layout
    self.decoding = decoding
    self.expected_rate = sample_rate
    self.cache = cache
    self._cached = {}
    self._info = None
    self._decoded_length = None

  def __repr__(self) -> str:
    return f"Track({self.name!r}, subset={self.subset!r}, layout={self.layout!r})"

  def file(self, stem: str) -> pathlib.Path:
    """The file holding ``stem`` (the ``.stem.mp4`` itself for musdb18)."""
    _check_stem(stem)
    return self.path if self.layout == "musdb18" else self.path / f"{stem}.wav"

  def files(self) -> tuple[pathlib.Path, ...]:
    """Every file the track reads: its ``.stem.mp4`` (musdb18) or its five wavs (musdb18hq)."""
    return (self.path,) if self.layout == "musdb18" else tuple(self.file(s) for s in STEM_NAMES)

  def header(self) -> audio.AudioInfo:
    """`audio.AudioInfo` of the mixture (read once, cheap: no decoding)."""
    if self._info is None:
      self._info = audio.info(self.file("mixture"))
    return self._info

  @property
  def sample_rate(self) -> int:
    """The rate of the files on disk (Hz)."""
    return self.header().sample_rate

  @property
  def n_samples(self) -> int:
    """Samples per channel of the stems as this track decodes them.

    From the header where it is the decoded length (wav; ``decoding="float"``);
    otherwise (no length in the header, or the end padding kept) the mixture
    is decoded once and its length remembered.
    """
    if self.header().frames is None or self._keeps_padding:
      if self._decoded_length is None:
        self._decoded_length = self.stem("mixture").shape[-1]
      return self._decoded_length
    return self.header().frames

  @property
  def _keeps_padding(self) -> bool:
    return self.layout == "musdb18" and self.decoding == "musdb"

  @property
  def duration(self) -> float:
    """Length of the mixture in seconds."""
    return self.n_samples / self.sample_rate

  def stem(self, name: str) -> np.ndarray:
    """One stem (a name in `STEM_NAMES`) as float32 ``[2, n_samples]``."""
    return self.stems([name])[name]

  def mixture(self) -> np.ndarray:
    """The mixture, float32 ``[2, n_samples]``."""
    return self.stem("mixture")

  def targets(self) -> np.ndarray:
    """The four targets, float32 ``[4, 2, n_samples]`` in `mssjax.TARGETS` order."""
    stems = self.stems(TARGETS)
    return np.stack([stems[t] for t in TARGETS])

  def stems(self, names: Iterable[str] = STEM_NAMES) -> dict[str, np.ndarray]:
    """Several stems in one decoding pass, as a dict name -> float32 ``[2, n_samples]``.

    Raises:
      DataError: a file's sample rate is not the expected one (44.1 kHz by
        default), or stems differ in length.
      AudioError: a file is missing, corrupt, not stereo or mono, or holds NaN / Inf.
    """
    names = [_check_stem(n) for n in names]
    wanted = [n for n in names if n not in self._cached]
    loaded = self._read(wanted) if wanted else {}
    if self.cache:
      self._cached.update(loaded)
    out = {n: self._cached[n] if n in self._cached else loaded[n] for n in names}
    self._check_lengths(out)
    return out

  def clear_cache(self) -> None:
    """Drops the stems kept by ``cache=True``."""
    self._cached = {}

  def _read(self, names):
    field = self.decoding == "musdb"
    if self.layout == "musdb18":
      decoded, rate = audio.read(self.path, streams=[STEM_NAMES.index(n) for n in names], pcm16=field,
                                 keep_padding=field)
      out = {n: self._checked(x, rate, self.path) for n, x in zip(names, decoded)}
      if field and self._decoded_length is None:
        self._decoded_length = next(iter(out.values())).shape[-1]
      return out
    out = {}
    for name in names:
      (decoded,), rate = audio.read(self.file(name))
      out[name] = self._checked(decoded, rate, self.file(name))
    return out

  def _checked(self, decoded, rate, path):
    if rate != self.expected_rate:
      raise DataError(f"{path}: sample rate {rate} Hz, expected {self.expected_rate} Hz")
    stereo = audio.as_stereo(decoded, path=path)
    audio.check_finite(stereo, path=path)
    return stereo

  def _check_lengths(self, stems):
    lengths = {n: x.shape[-1] for n, x in stems.items()}
    if "mixture" not in lengths and (self._decoded_length is not None or self.header().frames is not None):
      lengths["mixture"] = self.n_samples
    if len(set(lengths.values())) > 1:
      detail = ", ".join(f"{n} {k}" for n, k in lengths.items())
      raise DataError(f"{self.path}: stems differ in length ({detail} samples)")


def _check_stem(name):
  return check_choice("stem", name, STEM_NAMES)


def _visible(entries):
  return sorted(e for e in entries if not e.name.startswith("."))


def _scan_subset(folder, *, any_folder=False):
  """(stem files, HQ track folders) in one subset folder.

  Track folders are those holding a wav file, or with ``any_folder`` every
  visible sub-folder (so that an emptied track folder is reported, not skipped).
  """
  if not folder.is_dir():
    return [], []
  entries = _visible(folder.iterdir())
  stems = [e for e in entries if e.is_file() and e.name.lower().endswith(STEM_SUFFIX)]
  folders = [e for e in entries
             if e.is_dir() and (any_folder or any(f.suffix.lower() == ".wav" for f in e.iterdir()))]
  return stems, folders


def detect_layout(root: str | os.PathLike) -> str:
  """Tells MUSDB18 (``.stem.mp4``) from MUSDB18-HQ (folders of wav) by what is on disk.

  Returns:
    "musdb18" or "musdb18hq".

  Raises:
    DataError: ``root`` is missing, holds neither layout, or holds both.
  """
  root = _check_root(root)
  found = [_scan_subset(root / s) for s in SUBSETS]
  has_stems = any(stems for stems, _ in found)
  has_folders = any(folders for _, folders in found)
  if has_stems and has_folders:
    raise DataError(f"{root}: holds both .stem.mp4 files and track folders; "
                    f"pass layout= one of {LAYOUTS}")
  if not (has_stems or has_folders):
    raise DataError(f"{root}: no tracks (expected {{train,test}}/NAME{STEM_SUFFIX} "
                    "or {train,test}/NAME/mixture.wav)")
  return "musdb18" if has_stems else "musdb18hq"


def _check_root(root):
  root = pathlib.Path(root)
  if not root.is_dir():
    raise DataError(f"{root}: no such folder")
  if not any((root / s).is_dir() for s in SUBSETS):
    raise DataError(f"{root}: has no train/ or test/ folder")
  return root


def _subsets(subset):
  subsets = SUBSETS if subset is None else (subset,) if isinstance(subset, str) else tuple(subset)
  for s in subsets:
    if s not in SUBSETS:
      raise ParameterError(f"subset={s!r} must be one of {SUBSETS} (or a list of them, or None)")
  return subsets


class Entry(NamedTuple):
  """A track as found on disk, before any check on its audio.

  Attributes:
    name: the track name.
    subset: "train" or "test".
    path: its ``.stem.mp4`` or its folder.
    missing: stem files absent from a musdb18hq folder (empty for musdb18).
    duplicate_of: other entries (``subset/file``) with the same name, compared case-insensitively.
  """
  name: str
  subset: str
  path: pathlib.Path
  missing: tuple
  duplicate_of: tuple


def scan(root: str | os.PathLike, *, layout: str | None = None) -> tuple[str, list[Entry]]:
  """Lists every track of both subsets as found on disk, problems included.

  Unlike `load_tracks` this never raises over one bad track: a track folder
  lacking stems or a duplicated name is recorded in its `Entry`.

  Returns:
    (layout, list of `Entry` sorted by subset then name).

  Raises:
    DataError: ``root`` is missing or holds no tracks of either layout.
  """
  root = _check_root(root)
  layout = detect_layout(root) if layout is None else check_choice("layout", layout, LAYOUTS)
  entries = []
  for subset in SUBSETS:
    stems, folders = _scan_subset(root / subset, any_folder=True)
    if layout == "musdb18":
      entries += [(f.name[:-len(STEM_SUFFIX)], subset, f, ()) for f in stems]
    else:
      entries += [(f.name, subset, f, tuple(s for s in STEM_NAMES if not (f / f"{s}.wav").is_file()))
                  for f in folders]
  seen = {}
  for name, subset, path, _ in entries:
    seen.setdefault(name.casefold(), []).append(f"{subset}/{path.name}")
  return layout, [Entry(name, subset, path, missing,
                        tuple(p for p in seen[name.casefold()] if p != f"{subset}/{path.name}"))
                  for name, subset, path, missing in entries]


def load_tracks(root: str | os.PathLike, *, subset: str | Sequence[str] | None = "test", split: str | None = None,
                layout: str | None = None, sample_rate: int = SAMPLE_RATE, cache: bool = False,
                decoding: str = "musdb") -> list[Track]:
  """Lists the tracks of a MUSDB18 or MUSDB18-HQ folder.

  Args:
    root: the dataset folder, holding ``train/`` and / or ``test/``.
    subset: "train", "test", a list of them, or None for both.
    split: for the training subset only: "train" (the 86 tracks that are not
      MUSDB18's validation tracks), "valid" (the 14 `VALIDATION_TRACKS`) or
      None (all of them), as ``musdb.DB(subsets="train", split=...)``.
    layout: "musdb18" or "musdb18hq"; None detects it (`detect_layout`).
    sample_rate: the rate the files must have; reading a stem at another rate
      raises `DataError`.
    cache: keep decoded stems in each `Track` (memory!).
    decoding: "musdb" (the ``musdb`` package's samples, the default) or
      "float"; see `DECODINGS`.

  Returns:
    list of `Track`, sorted by subset then name. Nothing is decoded.

  Raises:
    DataError: the folder is missing or empty, a subset holds no tracks, a
      track folder lacks stems, or two tracks share a name.
    ParameterError: unknown subset, split or layout.
  """
  subsets = _subsets(subset)
  check_choice("decoding", decoding, DECODINGS)
  if split is not None:
    check_choice("split", split, SPLITS)
    if subsets != ("train",):
      raise ParameterError(f"split={split!r} applies to subset='train' only, got subset={subset!r}")
  root = pathlib.Path(root)
  layout, entries = scan(root, layout=layout)
  duplicates = sorted({" and ".join(sorted((f"{e.subset}/{e.path.name}",) + e.duplicate_of))
                       for e in entries if e.duplicate_of})
  if duplicates:
    raise DataError(f"{root}: duplicate track names: {'; '.join(duplicates)}")
  tracks = []
  for s in subsets:
    found = [e for e in entries if e.subset == s]
    if not found:
      raise DataError(f"{root / s}: no {layout} tracks")
    for e in found:
      if e.missing:
        raise DataError(f"{e.path}: missing stem file(s) {', '.join(m + '.wav' for m in e.missing)}")
      tracks.append(Track(e.name, s, e.path, layout, sample_rate=sample_rate, cache=cache, decoding=decoding))
  if split is not None:
    valid = set(VALIDATION_TRACKS)
    tracks = [t for t in tracks if (t.name in valid) == (split == "valid")]
    if not tracks:
      raise DataError(f"{root}: no tracks in split {split!r}")
  return tracks
