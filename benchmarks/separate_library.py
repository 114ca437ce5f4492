"""Songs per minute of ``python -m mssjax separate`` on a folder of songs: one chunk per call against
``--batch-size``, one device against several forced CPU devices, with peak memory.

    .venv/bin/python benchmarks/separate_library.py [--songs 20] [--seconds 180] [--batch-size 8] \
        [--devices 1,8] [--method unet] [--folder outputs/separate_library]

Writes ``--songs`` generated mixtures (`mssjax.data.generate.generate_song`, 16-bit stereo at 44.1 kHz,
``--seconds`` long) into ``FOLDER/songs`` (kept: a re-run reuses them), then, for each device count and
batch size (one chunk per call, and ``--batch-size``), runs the command line in a fresh interpreter with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` and prints

- songs per minute and the real-time factor (wall-clock seconds per second of audio; below 1 is faster
  than real time) of separating the whole folder, the compilation excluded: each run first separates a
  warm-up song a chunk and a second long (compiling the program the folder then uses, or reading it from
  the persistent compilation cache), timed apart as "warm-up";
- the peak resident memory of that interpreter (its own ``VmHWM``, `benchmarks.timing.peak_memory_mb`).

Each run's stems are compared with the first run's: ``--batch-size`` must change no bit (``equal``).
The stems need 4 x 32-bit float copies of every song on disk (about 1.3 GB for 20 three-minute songs),
in ``FOLDER/out`` (removed after each run).

A quick check: ``--songs 4 --seconds 30``. On CPU the forced devices share the machine's cores: they
split the work of one program the way XLA's own threads already do, so expect little from them there;
on a machine of several accelerators the batch is split over real devices.
"""

import argparse
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mssjax import audio  # noqa: E402  # pylint: disable=wrong-import-position

CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from benchmarks.timing import peak_memory_mb
from mssjax.__main__ import main
warmup, out, batch, method, songs = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
flags = ["--quiet", "--batch-size", batch, "--method", method]
start = time.perf_counter()
assert main(["separate", warmup, "-o", out + "-warmup", *flags]) == 0
compile_seconds = time.perf_counter() - start
start = time.perf_counter()
code = main(["separate", *songs, "-o", out, *flags])
seconds = time.perf_counter() - start
import jax
print("RESULT", json.dumps({"code": code, "seconds": seconds, "compile_seconds": compile_seconds,
                            "peak_mb": peak_memory_mb(), "devices": jax.local_device_count()}))
"""


def write_songs(folder: pathlib.Path, *, n_songs: int, seconds: float, rate: int = 44100) -> list[pathlib.Path]:
  """``n_songs`` generated mixtures ``folder/song NN.wav`` (16-bit stereo); songs already there are kept."""
  from mssjax.data import generate  # pylint: disable=import-outside-toplevel
  folder.mkdir(parents=True, exist_ok=True)
  paths = []
  for index in range(n_songs):
    path = folder / f"song {index:02d} ({seconds:g} s).wav"
    if not path.is_file():
      song = generate.generate_song(seed=index, seconds=seconds, sample_rate=rate)
      audio.save(path, song["mixture"], sample_rate=rate, subtype="PCM_16")
    paths.append(path)
  return paths


def chunk_seconds(method: str) -> float:
  """The separator's chunk (its warm-up song is this long, plus a second)."""
  from mssjax import separators  # pylint: disable=import-outside-toplevel
  return float(separators.get(method).chunk_seconds)


def stems_digest(folder: pathlib.Path) -> str:
  """SHA-256 of every stem file's samples under ``folder``, in name order."""
  digest = hashlib.sha256()
  for path in sorted(folder.rglob("*.wav")):
    digest.update(str(path.relative_to(folder)).encode())
    digest.update(audio.load(path).tobytes())
  return digest.hexdigest()


def run(songs: list[pathlib.Path], warmup: pathlib.Path, out: pathlib.Path, *, devices: int, batch_size: int,
        method: str) -> dict:
  """One run of the command on ``devices`` forced CPU devices; its figures and its stems' digest."""
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform")]
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=" ".join(flags + [f"--xla_force_host_platform_device_count={devices}"]))
  for folder in (out, pathlib.Path(f"{out}-warmup")):
    shutil.rmtree(folder, ignore_errors=True)
  result = subprocess.run([sys.executable, "-c", CHILD, str(REPO), str(warmup), str(out), str(batch_size), method,
                           *map(str, songs)], cwd=REPO, env=env, capture_output=True, text=True, check=False)
  lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
  if result.returncode or not lines:
    sys.exit(f"separate failed ({result.returncode}):\n{result.stderr[-3000:]}")
  figures = json.loads(lines[-1][len("RESULT "):])
  if figures["code"]:
    sys.exit(f"separate failed on some songs:\n{result.stderr[-3000:]}")
  figures["digest"] = stems_digest(out)
  return figures


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--songs", type=int, default=20)
  parser.add_argument("--seconds", type=float, default=180.0, help="each song's length")
  parser.add_argument("--batch-size", type=int, default=8, help="compared with 1 (one chunk per call)")
  parser.add_argument("--devices", default="1,8", help="forced CPU device counts, comma-separated")
  parser.add_argument("--method", default="unet")
  parser.add_argument("--folder", default=str(REPO / "outputs" / "separate_library"),
                      help="songs are written to FOLDER/songs (kept), stems to FOLDER/out (removed)")
  args = parser.parse_args()
  folder = pathlib.Path(args.folder)
  start = time.perf_counter()
  songs = write_songs(folder / "songs", n_songs=args.songs, seconds=args.seconds)
  warmup = write_songs(folder / "warmup", n_songs=1, seconds=chunk_seconds(args.method) + 1.0)[0]
  print(f"{args.songs} song{'s' if args.songs != 1 else ''} of {args.seconds:g} s (16-bit stereo, 44.1 kHz) in "
        f"{folder / 'songs'} (generated or found in {time.perf_counter() - start:.0f} s); {os.cpu_count()} CPU cores; "
        f"method {args.method}")
  audio_seconds = args.songs * args.seconds
  first = None
  print(f"{'devices':>7} {'batch':>5} {'songs/min':>9} {'RTF':>6} {'x real time':>11} {'warm-up s':>9} "
        f"{'peak MB':>7}  stems")
  for devices in (int(d) for d in args.devices.split(",")):
    for batch_size in dict.fromkeys((1, args.batch_size)):
      figures = run(songs, warmup, folder / "out", devices=devices, batch_size=batch_size, method=args.method)
      first = first or figures["digest"]
      same = "equal" if figures["digest"] == first else "DIFFERENT"
      print(f"{figures['devices']:>7} {batch_size:>5} {args.songs / figures['seconds'] * 60:>9.2f} "
            f"{figures['seconds'] / audio_seconds:>6.3f} {audio_seconds / figures['seconds']:>11.1f} "
            f"{figures['compile_seconds']:>9.1f} {figures['peak_mb']:>7.0f}  {same}", flush=True)
  shutil.rmtree(folder / "out", ignore_errors=True)
  shutil.rmtree(f"{folder / 'out'}-warmup", ignore_errors=True)


if __name__ == "__main__":
  main()
