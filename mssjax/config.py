"""Configs: locked ConfigDicts, overrides by dotted name, and their errors.

Every knob of mssjax lives in one ConfigDict with one default (the library's
``default_config`` functions, returned by ``configs/<name>.py``). Users change
it with overrides, ``{"hpss.kernel_size": (31, 17)}`` or, on the command line
(`mssjax.cli`), ``--set hpss.kernel_size=31,17``; a misspelled key is a
`ParameterError` that lists the valid keys, never a silently ignored setting.
`parse_assignments` is the one reader of ``KEY=VALUE`` text: given the config,
it reads each value as its default's type (``31,17`` for a tuple, ``true`` for
a bool, any text for a string).
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


def flat_items(config: ConfigDict, prefix: str = "") -> list[tuple[str, Any]]:
  """``(dotted name, value)`` of every leaf of ``config``, sorted by name."""
  items = []
  for key, value in config.items():
    name = f"{prefix}{key}"
    items.extend(flat_items(value, name + ".") if isinstance(value, ConfigDict) else [(name, value)])
  return sorted(items, key=lambda item: item[0])


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


def parse_assignments(assignments: Iterable[str], config: ConfigDict | None = None, *,
                      what: str = "config") -> dict[str, Any]:
  """``["hpss.kernel_size=31,17", "checkpoint=runs/a"]`` -> ``{"hpss.kernel_size": (31, 17), ...}``.

  Args:
    assignments: ``KEY=VALUE`` texts; a later one of the same key wins.
    config: the config they change: each value is read as the type of its
      key's default (`parse_value`). None, or a key the config lacks (which
      `override` then reports with the valid keys): a Python literal when the
      text is one (numbers, tuples, ``True``, ``None``), else the text.
    what: the config's name, for messages.

  Raises:
    ParameterError: an assignment without ``=``, or a value that is not of its
      default's type.
  """
  out = {}
  for assignment in assignments:
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
      raise ParameterError(f"{assignment!r} must be KEY=VALUE, e.g. hpss.kernel_size=31,17")
    default = _default(config, key)
    out[key] = _literal_or_text(text) if default is _UNKNOWN else parse_value(text, default, key=key, what=what)
  return out


_UNKNOWN = object()


def _default(config: ConfigDict | None, dotted: str) -> Any:
  """The value of ``dotted`` in ``config``; `_UNKNOWN` when there is none (or no config)."""
  node = config
  for part in dotted.split("."):
    if not isinstance(node, ConfigDict) or part not in node:
      return _UNKNOWN
    node = node[part]
  return _UNKNOWN if isinstance(node, ConfigDict) else node


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def parse_value(text: str, default: Any, *, key: str = "value", what: str = "config") -> Any:
  """``text`` read as a value of ``default``'s type (the reading of ``--set KEY=VALUE``).

  A bool reads true/false (yes/no, on/off, 1/0, any case); an int or a float
  a number (``None`` unsets it); a string the text as it is; a tuple a Python
  literal (``31,17``, ``(1, 2)``), else comma-separated items
  (``vocals,accompaniment``; an empty text is ``()``); a key whose default is
  None a Python literal, else the text.

  Raises:
    ParameterError: the text is not of the default's type.
  """
  text = text.strip()
  if isinstance(default, bool):
    if text.lower() in _TRUE + _FALSE:
      return text.lower() in _TRUE
    raise ParameterError(f"{what}: {key}={text!r} must be true or false")
  if isinstance(default, (int, float)):
    value = _literal_or_text(text)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
      return value if value is None or isinstance(default, int) else float(value)
    if isinstance(default, float) and _is_float(text):
      return float(text)
    raise ParameterError(f"{what}: {key}={text!r} must be {'an integer' if isinstance(default, int) else 'a number'} "
                         f"(the default is {default!r})")
  if isinstance(default, str):
    return text
  if isinstance(default, (tuple, list)):
    value = _literal_or_text(text) if text else ()
    if isinstance(value, (tuple, list)):
      return tuple(value)
    return tuple(_literal_or_text(item) for item in text.split(",")) if "," in text else (value,)
  return _literal_or_text(text)


def _literal_or_text(text: str) -> Any:
  text = text.strip()
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
    return text
  return tuple(value) if isinstance(value, list) else value


def _is_float(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


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
