"""Which tracks validate training: a folder, a list of names, a seeded fraction, or MUSDB18's 14.

The training subset's ``split`` is "train" (the tracks training reads), "valid"
(the tracks it is validated on) or None (the whole subset). `ValidSplit.method`
says where the validation tracks come from:

- ``"folder"``: the ``valid`` subset folder (``ROOT/valid/``); split "train" is
  then the whole ``train`` subset;
- ``"list"``: the track names listed in a text file (one a line; blank lines and
  lines starting with ``#`` skipped), taken out of the ``train`` subset;
- ``"fraction"``: a seeded choice of ``fraction`` of the ``train`` tracks (at
  least one, never all), the same for a given seed and set of names;
- ``"musdb"``: MUSDB18's validation tracks (`musdb.VALIDATION_TRACKS`);
- ``"auto"``: "list" where a list file is given, else "folder" where
  ``ROOT/valid/`` holds tracks, else "musdb" for a MUSDB18(-HQ) folder holding
  one of MUSDB18's validation tracks, else "fraction".

For a sourcefolder the items are files and the choice is made per stem folder,
so every stem keeps files on both sides (list entries are ``STEM/FILE``).
"""

from __future__ import annotations

import dataclasses
import pathlib
import zlib
from typing import Sequence

import numpy as np

from mssjax.data import musdb
from mssjax.data.layouts import SUBSETS, Dataset, Item
from mssjax.errors import DataError, ParameterError, check_choice, check_finite, check_non_negative_int

__all__ = ["VALID_METHODS", "SPLITS", "ValidSplit", "select"]

VALID_METHODS = ("auto", "folder", "list", "fraction", "musdb")
SPLITS = (None, "train", "valid")


@dataclasses.dataclass(frozen=True)
class ValidSplit:
  """How the validation tracks are chosen (``config.data.valid_*``).

  Attributes:
    method: one of `VALID_METHODS`.
    list_file: the list of validation track names (method "list", or "auto").
    fraction: share of the training tracks held out (method "fraction"), in (0, 1).
    seed: seed of the fraction's choice (and of a sourcefolder's validation mixtures).

  Raises:
    ParameterError: an unknown method, a fraction outside (0, 1), a negative seed,
      or method "list" without a list file.
  """
  method: str = "auto"
  list_file: str = ""
  fraction: float = 0.1
  seed: int = 0

  def __post_init__(self) -> None:
    check_choice("data.valid_method", self.method, VALID_METHODS)
    check_finite("data.valid_fraction", self.fraction, minimum=0, strict=True)
    if self.fraction >= 1:
      raise ParameterError(f"data.valid_fraction={self.fraction} must be < 1")
    check_non_negative_int("data.valid_seed", self.seed)
    if self.method == "list" and not self.list_file:
      raise ParameterError("data.valid_list must name a file of track names for data.valid_method='list'")


def resolve_method(dataset: Dataset, valid: ValidSplit) -> str:
  """The method "auto" stands for on ``dataset`` (other methods are returned as they are)."""
  if valid.method != "auto":
    return valid.method
  if valid.list_file:
    return "list"
  if dataset.subset("valid"):
    return "folder"
  if dataset.layout in musdb.LAYOUTS and any(i.name in musdb.VALIDATION_TRACKS for i in dataset.subset("train")):
    return "musdb"
  return "fraction"


def _groups(dataset: Dataset, items: Sequence[Item]) -> dict[str, list[Item]]:
  """Items chosen from together: per stem folder for a sourcefolder, else all in one."""
  if dataset.layout != "sourcefolder":
    return {"": list(items)}
  groups = {}
  for item in items:
    groups.setdefault(item.files[0][0], []).append(item)
  return groups


def _listed(path: str) -> list[str]:
  try:
    lines = pathlib.Path(path).read_text().splitlines()
  except OSError as error:
    raise DataError(f"{path}: cannot read the validation list ({error.strerror})") from None
  return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _by_list(dataset: Dataset, train: list[Item], list_file: str) -> set[str]:
  names = _listed(list_file)
  unknown = sorted(set(names) - {i.name for i in train})
  if unknown:
    raise DataError(f"{list_file}: names no track of {dataset.root / 'train'}: {', '.join(unknown)}")
  if not names:
    raise DataError(f"{list_file}: lists no track")
  return set(names)


def _by_fraction(dataset: Dataset, train: list[Item], valid: ValidSplit) -> set[str]:
  chosen = set()
  for key, items in _groups(dataset, train).items():
    count = max(1, int(round(valid.fraction * len(items))))
    if count >= len(items):
      where = f"{dataset.root}" + (f" (stem {key})" if key else "")
      raise DataError(f"{where}: data.valid_fraction={valid.fraction} of {len(items)} training track(s) "
                      "leaves none to train on; add tracks, a valid/ folder or a data.valid_list")
    rng = np.random.default_rng([valid.seed, zlib.crc32(key.encode())])
    chosen |= {items[i].name for i in rng.permutation(len(items))[:count]}
  return chosen


def select(dataset: Dataset, *, subset: str, split: str | None, valid: ValidSplit = ValidSplit()) -> list[Item]:
  """The items of ``subset`` and ``split`` (see the module docstring).

  Args:
    dataset: from `mssjax.data.layouts.scan`.
    subset: "train", "valid" or "test".
    split: None (the whole subset), "train" or "valid" (subset "train" only).
    valid: `ValidSplit`.

  Returns:
    list of `Item`, in the dataset's order.

  Raises:
    DataError: the selection is empty, a listed name is unknown, or a fraction
      leaves nothing to train on.
    ParameterError: an unknown subset or split, or a split of a subset other than "train".
  """
  check_choice("subset", subset, SUBSETS)
  check_choice("split", split, SPLITS)
  if split is not None and subset != "train":
    raise ParameterError(f"split={split!r} applies to subset='train' only, got subset={subset!r}")
  items = dataset.subset(subset)
  if split is not None:
    items = _split(dataset, items, split, valid)
  if not items:
    where = dataset.root / subset if subset != "train" or dataset.subset("valid") else dataset.root
    raise DataError(f"{where}: no {dataset.layout} tracks in subset {subset!r}"
                    + (f", split {split!r}" if split else ""))
  return items


def _split(dataset: Dataset, train: list[Item], split: str, valid: ValidSplit) -> list[Item]:
  method = resolve_method(dataset, valid)
  if method == "folder":
    if not dataset.subset("valid"):
      raise DataError(f"{dataset.root / 'valid'}: no validation folder (data.valid_method='folder')")
    return train if split == "train" else dataset.subset("valid")
  if method == "musdb":
    names = set(musdb.VALIDATION_TRACKS)
    if not any(i.name in names for i in train):
      raise DataError(f"{dataset.root}: no tracks in split {split!r} (MUSDB18's validation tracks are absent: "
                      "set data.valid_method to 'fraction', 'list' or 'folder')")
  elif method == "list":
    names = _by_list(dataset, train, valid.list_file)
  else:
    names = _by_fraction(dataset, train, valid)
  return [i for i in train if (i.name in names) == (split == "valid")]
