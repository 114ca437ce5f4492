"""The errors mssjax raises.

Every error names what was wrong in librosa's form, for example
``ParameterError("hop_length=0 must be a positive integer")``, and, for files,
the path: ``AudioError("song.wav: file is empty")``.
"""


class ParameterError(ValueError):
  """A parameter or an input array is not valid (raised before any jit)."""


class AudioError(ValueError):
  """An audio file cannot be read or written, or holds unusable audio."""


class DataError(ValueError):
  """A dataset (folder of tracks) is missing, malformed or inconsistent."""
