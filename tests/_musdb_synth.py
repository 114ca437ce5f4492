"""Small synthetic MUSDB18-HQ folders for the data tests (written with soundfile, so defects are possible)."""

import numpy as np
import soundfile

RATE = 44100
TARGET_FREQUENCIES = {"vocals": 660.0, "drums": 110.0, "bass": 55.0, "other": 330.0}


def make_stems(n=RATE // 4, *, seed=0, rate=RATE):
  """Four distinct stereo tones (random phase per channel) and their sum as "mixture".

  On the 16-bit grid, as MUSDB18's stems are (so `mssjax.data.prepare` stores them exactly).
  """
  rng = np.random.default_rng(seed)
  t = np.arange(n) / rate
  stems = {name: np.rint(0.2 * 32768 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi, (2, 1))))
           .astype(np.float32) / 32768 for name, f in TARGET_FREQUENCIES.items()}
  stems["mixture"] = sum(stems[name] for name in TARGET_FREQUENCIES).astype(np.float32)
  return stems


def write_track(root, subset, name, stems, *, rate=RATE, skip=()):
  """Writes ``root/subset/name/<stem>.wav`` (float) for every stem not in ``skip``."""
  folder = root / subset / name
  folder.mkdir(parents=True, exist_ok=True)
  for stem, x in stems.items():
    if stem not in skip:
      soundfile.write(folder / f"{stem}.wav", np.asarray(x, np.float32).T, rate, subtype="FLOAT")
  return folder
