"""Peak memory and time of ``python -m mssjax separate`` on a long song (a 1-hour 16-bit wav by default).

    .venv/bin/python benchmarks/long_song.py [--minutes 60] [--method unet] [--rate 44100] [--keep]

Writes a generated song (noise and tones, 16-bit stereo, ``--minutes`` long, 635 MB for an hour at
44.1 kHz) to a temporary folder, then separates it in a fresh interpreter with the command line, as a
user would, and prints

- the peak resident memory of that process (its own ``VmHWM``; ``ru_maxrss`` of a child is not its
  own: Linux carries the high-water mark across fork + exec);
- its wall-clock time, and the time per minute of audio;
- the size of the stems written.

``separate`` streams: the song is read, separated chunk by chunk and each stem written as it is
done, so the peak does not grow with the song (#36 case 7: it was 8 GB for an hour, all of it held
in memory). The stems need about 4 x 1.27 GB of disk for an hour (32-bit float wav). About 5 minutes
for an hour with the default network on an idle 2-core CPU; ``--rate 48000`` adds the streaming
resampler.
"""

import argparse
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from mssjax import audio

REPO = pathlib.Path(__file__).resolve().parents[1]

CHILD = """
import sys
from mssjax.__main__ import main
code = main(sys.argv[1:])
status = open("/proc/self/status").read()
print("VMHWM_KB", status.split("VmHWM:")[1].split()[0])
sys.exit(code)
"""


def write_song(path: pathlib.Path, *, minutes: float, rate: int) -> None:
  """Noise and two tones that change every 10 s, 16-bit stereo, written one second at a time."""
  rng = np.random.default_rng(0)
  with audio.BlockWriter(path, sample_rate=rate, channels=2, subtype="PCM_16") as writer:
    for second in range(int(minutes * 60)):
      t = np.arange(second * rate, (second + 1) * rate) / rate
      pitch = 110.0 * (1 + (second // 10) % 7)
      tones = np.stack([0.2 * np.sin(2 * np.pi * pitch * t), 0.2 * np.sin(2 * np.pi * 1.5 * pitch * t)])
      writer.write(tones + 0.05 * rng.standard_normal((2, rate)))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--minutes", type=float, default=60.0)
  parser.add_argument("--method", default="unet")
  parser.add_argument("--rate", type=int, default=44100, help="the song's sample rate")
  parser.add_argument("--keep", action="store_true", help="keep the song and stems (the folder is printed)")
  args = parser.parse_args()
  folder = pathlib.Path(tempfile.mkdtemp(prefix="mssjax-long-song-"))
  try:
    song = folder / "long.wav"
    start = time.perf_counter()
    write_song(song, minutes=args.minutes, rate=args.rate)
    print(f"song: {args.minutes:g} min, {args.rate} Hz, 16-bit stereo, {song.stat().st_size / 1e6:.0f} MB "
          f"(written in {time.perf_counter() - start:.0f} s) in {folder}")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CHILD, "separate", str(song), "--method", args.method, "-o",
                             str(folder / "out"), "--quiet"], cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode:
      sys.exit(f"separate failed ({result.returncode}):\n{result.stderr[-3000:]}")
    peak_mb = int(result.stdout.split("VMHWM_KB")[1]) / 1024
    stems = sum(f.stat().st_size for f in (folder / "out").rglob("*.wav"))
    print(f"separate --method {args.method}: peak RSS {peak_mb:.0f} MB, {seconds:.0f} s "
          f"({seconds / args.minutes:.1f} s per minute of audio); stems {stems / 1e9:.2f} GB")
  finally:
    if not args.keep:
      shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
  main()
