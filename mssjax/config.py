"""Configs: locked ConfigDicts, overrides by dotted name, and their errors.

Every knob of mssjax lives in one ConfigDict with one default (the library's
``default_config`` functions, returned by ``configs/<name>.py``). Users change
it with overrides, ``{"hpss.kernel_size": (31, 17)}`` or, on the command line,
``hpss.kernel_size=31,17``; a misspelled key is a `ParameterError` that lists
the valid keys, never a silently ignored setting.
"""

from __future__ import annotations

import ast
from typing import Any, Iterable, Mapping

import ml_collections

from mssjax.errors import ParameterError

ConfigDict = ml_collections.ConfigDict


def flat_keys(config: ConfigDict, prefix: str = "") -> list[str]:
  """The dotted names of every leaf of ``config``, sorted (``["hpss.kernel_size", ...]``)."""
  keys = []
  for key, value in config.items():
    name = f"{prefix}{key}"
    keys.extend(flat_keys(value, name + ".") if isinstance(value, ConfigDict) else [name])
  return sorted(keys)


def _node(config: ConfigDict, dotted: str, what: str) -> tuple[ConfigDict, str]:
  """The ConfigDict holding ``dotted``'s last part, and that part; unknown parts raise."""
  parts = dotted.split(".")
  node = config
  for i, part in enumerate(parts):
    if not isinstance(node, ConfigDict) or part not in node:
      raise ParameterError(f"{what}: unknown key {dotted!r}; valid keys: {', '.join(flat_keys(config))}")
    if i < len(parts) - 1:
      node = node[part]
  return node, parts[-1]


def override(config: ConfigDict, overrides: Mapping[str, Any] | None, *, what: str = "config") -> ConfigDict:
  """A locked copy of ``config`` with ``overrides`` applied.

  Args:
    config: the defaults.
    overrides: ``{dotted_key: value}`` (nested mappings are flattened first).
    what: the config's name, for messages (e.g. ``"hpss_repet config"``).

  Raises:
    ParameterError: an unknown key (the message lists the valid ones), or a
      value of the wrong type.
  """
  out = ConfigDict(config.to_dict())
  for key, value in _flatten(overrides or {}).items():
    node, leaf = _node(out, key, what)
    if isinstance(node[leaf], ConfigDict):
      raise ParameterError(f"{what}: {key!r} is a group of settings, not one; set one of "
                           f"{', '.join(flat_keys(node[leaf], key + '.'))}")
    try:
      node[leaf] = value
    except TypeError as e:
      raise ParameterError(f"{what}: {key}={value!r} has the wrong type (the default is "
                           f"{node[leaf]!r})") from e
  out.lock()
  return out


def _flatten(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in overrides.items():
    if isinstance(value, (Mapping, ConfigDict)) and not isinstance(value, str):
      flat.update(_flatten(dict(value), f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def check_same_keys(config: ConfigDict, default: ConfigDict, *, what: str = "config") -> None:
  """Raises `ParameterError` unless ``config`` has exactly the keys of ``default``."""
  given, valid = set(flat_keys(config)), set(flat_keys(default))
  if given != valid:
    unknown, missing = sorted(given - valid), sorted(valid - given)
    raise ParameterError(f"{what}: unknown keys {unknown}, missing keys {missing}; valid keys: "
                         f"{', '.join(sorted(valid))}")


def parse_assignments(assignments: Iterable[str]) -> dict[str, Any]:
  """``["hpss.kernel_size=31,17", "checkpoint=runs/a"]`` -> ``{"hpss.kernel_size": (31, 17), ...}``.

  A value is read as a Python literal when it is one (numbers, tuples,
  ``True``, ``None``); anything else stays a string.
  """
  out = {}
  for assignment in assignments:
    key, sep, text = assignment.partition("=")
    if not sep or not key.strip():
      raise ParameterError(f"{assignment!r} must be KEY=VALUE, e.g. hpss.kernel_size=31,17")
    try:
      value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
      value = text.strip()
    out[key.strip()] = tuple(value) if isinstance(value, list) else value
  return out


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
  """The dotted keys whose values differ between two nested mappings (``"a.b: 1 -> 2"``)."""
  old_flat, new_flat = _flatten(old), _flatten(new)
  out = []
  for key in sorted(set(old_flat) | set(new_flat)):
    a, b = _normal(old_flat.get(key, "<absent>")), _normal(new_flat.get(key, "<absent>"))
    if a != b:
      out.append(f"{key}: {a!r} -> {b!r}")
  return out


def _normal(value: Any) -> Any:
  return tuple(_normal(v) for v in value) if isinstance(value, (list, tuple)) else value
