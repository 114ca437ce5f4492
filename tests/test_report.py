"""mssjax.evaluation.report: the static page, checked in a real headless browser (Debian's chromium)."""

import json
import os
import pathlib
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import numpy as np
import pytest

from mssjax import TARGETS, audio
from mssjax.metrics import store
from mssjax.evaluation.report import build_report, plots

plt = plots.plt

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

_MARKER = "mssjax-browser-check "
_CHECK_SCRIPT = """<script>
window.addEventListener('load', async () => {
  const res = [];
  for (const img of document.images)
    res.push(['img', img.complete && img.naturalWidth > 0 ? 'ok' : 'bad', img.getAttribute('src')]);
  const audios = Array.from(document.querySelectorAll('audio'));
  await Promise.all(audios.map(a => new Promise(r => {
    const done = (s) => { res.push(['audio', s, a.getAttribute('src')]); r(); };
    if (a.readyState >= 2) return done('ok');
    a.addEventListener('loadeddata', () => done('ok'));
    a.addEventListener('error', () => done('bad'));
    a.preload = 'auto'; a.load();
  })));
  console.log('%s' + JSON.stringify(res));
});
</script></body>""" % _MARKER


def _forward_lines(stream, lines):
  for line in stream:
    lines.put(line)
  lines.put(None)


def browser_check(index_html, timeout=120.0):
  """Opens a copy of the page (plus a checking script) in headless chromium.

  The script reports on the browser's console once every medium has loaded or failed, and the
  wait for that line is in real time. (Dumping the DOM after a --virtual-time-budget raced the
  media pipeline, whose threads run outside virtual time: on a busy machine a corrupt wav had
  not yet failed when the 20 virtual seconds were spent, so the page looked unfinished.)

  Returns:
    list of (kind, status, src): every <img> (rendered: naturalWidth > 0) and every
    <audio> (first frame decoded: 'loadeddata', or 'error').
  """
  index_html = pathlib.Path(index_html)
  check = index_html.with_name("_browser_check.html")
  check.write_text(index_html.read_text().replace("</body>", _CHECK_SCRIPT))
  lines = queue.Queue()
  log = []
  try:
    with tempfile.TemporaryDirectory() as profile:
      proc = subprocess.Popen(
          [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", check.resolve().as_uri()],
          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
          start_new_session=True)
      threading.Thread(target=_forward_lines, args=(proc.stderr, lines), daemon=True).start()
      deadline = time.monotonic() + timeout
      try:
        while (left := deadline - time.monotonic()) > 0:
          try:
            line = lines.get(timeout=left)
          except queue.Empty:
            break
          if line is None:
            break
          log.append(line)
          if _MARKER in line and "CONSOLE" in line:
            payload = line.split(_MARKER, 1)[1].rsplit('", source:', 1)[0]
            return [tuple(r) for r in json.loads(payload)]
      finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
  finally:
    check.unlink()
  raise AssertionError(f"page did not report within {timeout:.0f} s: {''.join(log)[-1000:]}")


def _fake_workdir(root, methods, track="Song A & B"):
  rng = np.random.default_rng(0)
  for i in range(3):
    name = track if i == 0 else f"Song {i}"
    for method in methods:
      scores = {t: {m: rng.normal(4, 2, 6) for m in ("SDR", "ISR", "SIR", "SAR")} for t in TARGETS}
      cost = {"needs_references": True, "complexity": {"flops_per_second": 2.6e8, "memory_bytes": 10**8,
                                                       "chunk_seconds": 3.0, "loops_counted_once": 0}}
      store.save_track(root, method, "test", name, scores,  # irm2 measured; the others stored before complexity
                       meta={"audio_seconds": 3.0, "separation_seconds": 0.3, "n_parameters": 0,
                             **(cost if method == "irm2" else {})})
  n = 22050
  base = root / "report" / "audio" / track
  stems = (0.1 * rng.standard_normal((4, 2, n))).astype(np.float32)
  audio.save(base / "reference" / "mixture.wav", stems.sum(0), subtype="PCM_16")
  for who in ["reference"] + list(methods):
    for t, x in zip(TARGETS, stems):
      audio.save(base / who / f"{t}.wav", 0.9 * x, subtype="PCM_16")
  return track


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  root = tmp_path_factory.mktemp("report")
  methods = ["irm2", "hpss_repet"]
  track = _fake_workdir(root, methods)
  path = build_report(root, methods, tracks=[track],
                      failures=[{"method": "nmf", "track": "Song 9", "error": "ParameterError: <bad>"}])
  return path, methods


def test_page_is_static_with_relative_paths(report):
  path, methods = report
  page = path.read_text()
  assert "<table>" in page and "irm2" in page and "hpss_repet" in page
  srcs = re.findall(r"src='([^']+)'", page)
  assert len([s for s in srcs if s.endswith(".wav")]) == 1 + 4 * (1 + len(methods))
  assert all(not s.startswith(("/", "http", "file:")) for s in srcs)
  assert "ParameterError: &lt;bad&gt;" in page      # failures listed, escaped
  assert "<img src='figures/complexity.png'" in page
  for fig in ("boxplots.png", "distributions.png", "complexity.png"):
    assert (path.parent / "figures" / fig).stat().st_size > 1000


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_every_image_renders_and_every_audio_decodes_in_chromium(report):
  path, methods = report
  results = browser_check(path)
  images = [r for r in results if r[0] == "img"]
  players = [r for r in results if r[0] == "audio"]
  assert len(images) == 3 + len(methods) and len(players) == 1 + 4 * (1 + len(methods))
  assert all(status == "ok" for _, status, _ in results), [r for r in results if r[1] != "ok"]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_browser_check_catches_broken_media(tmp_path):
  """The check itself can fail: a missing image and a corrupt wav are reported as bad."""
  (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
  (tmp_path / "index.html").write_text(
      "<!DOCTYPE html><html><body><img src='missing.png'>"
      "<audio controls src='bad.wav'></audio><audio controls src='absent.wav'></audio></body></html>")
  statuses = [r[1] for r in browser_check(tmp_path / "index.html")]
  assert statuses == ["bad", "bad", "bad"]


def test_pivot_tables_put_methods_in_rows_sdr_first(report):
  path, methods = report
  page = path.read_text()
  captions = re.findall(r"<caption>(\w+) \(dB\)</caption>", page)
  assert captions == ["SDR", "ISR", "SIR", "SAR"]
  first = page[page.index("<table class='pivot'>"):page.index("</table>")]
  assert re.findall(r"<th>([^<]+)</th>", first) == ["method", *TARGETS, "average"]
  assert [re.search(r"<td>([^<]+)</td>", row).group(1) for row in first.split("<tr>")[2:]] == methods


def _rows(method, metric_values):
  return [{"method": method, "track": f"T{i}", "target": "vocals", "metric": metric, "frames": np.full(3, value)}
          for metric, value in metric_values.items() for i in range(2)]


def test_a_method_far_beyond_the_others_is_off_the_axis():
  # the mixture on real songs: SAR and ISR about 130 dB; on generated songs its ISR is near the others'
  rows = _rows("mixture", {"SDR": -5.0, "SAR": 132.0, "ISR": 15.0}) + _rows("irm2", {"SDR": 8.0, "SAR": 9.0,
                                                                                     "ISR": 20.0})
  fig, axes = plt.subplots(1, 3)
  for ax, metric in zip(axes, ("SDR", "SAR", "ISR")):
    plots._panel(ax, rows, ["mixture", "irm2"], "vocals", metric, per_track=True)  # pylint: disable=protected-access
  labels = [[t.get_text() for t in ax.get_xticklabels()] for ax in axes]
  assert labels[0] == labels[2] == ["mixture", "irm2"]
  assert labels[1][0] == "mixture\n(132 dB,\noff axis)"
  assert axes[0].get_ylim()[0] < -5 and axes[1].get_ylim()[1] < 20 and axes[2].get_ylim()[0] < 15
  plt.close(fig)


def test_spectrograms_have_a_log_frequency_axis(tmp_path, monkeypatch):
  saved = []
  monkeypatch.setattr(plots, "_save", lambda fig, path, dpi: saved.append(fig))
  x = np.random.default_rng(0).standard_normal((2, 22050)).astype(np.float32)
  plots.spectrogram_figure({"vocals": x}, {"vocals": 0.5 * x}, tmp_path / "s.png", sample_rate=22050)
  axes = saved[0].axes
  assert [ax.get_yscale() for ax in axes] == ["log", "log"]
  assert axes[0].get_ylim() == pytest.approx((plots.LOWEST_HZ, 11025))
  plt.close(saved[0])


def test_complexity_figure_puts_methods_without_parameters_at_the_left_edge(tmp_path, monkeypatch):
  saved = []
  monkeypatch.setattr(plots, "_save", lambda fig, path, dpi: saved.append(fig))
  points = [plots.MethodPoint("unet", 3.5, 1_300_000, 0.35), plots.MethodPoint("irm1", 8.0, 0, 0.26, oracle=True),
            plots.MethodPoint("mixture", -4.0, 0, 0.0), plots.MethodPoint("old", 2.0, 50_000, float("nan"))]
  plots.complexity_figure(points, tmp_path / "c.png")
  parameters, compute = saved[0].axes[:2]
  assert parameters.get_xscale() == compute.get_xscale() == "log"
  for ax, want, edge_label in ((parameters, {"mixture": 1e3, "irm1": 1e3, "old": 5e4, "unet": 1.3e6}, "no\nparameters"),
                               (compute, {"mixture": 1e-2, "irm1": 0.26, "unet": 0.35}, "no\nFLOPs")):
    assert {t.get_text(): t.xy[0] for t in ax.texts if hasattr(t, "xy")} == want  # the zeros a decade below
    assert ax.get_xticklabels()[0].get_text() == edge_label and ax.get_xticks()[0] == min(want.values())
  assert [t.get_text() for t in compute.texts if t.get_text().startswith("not measured")] == ["not measured: old"]
  oracle = [c for c in compute.collections if c.get_offsets()[0][1] == 8.0][0]
  assert oracle.get_facecolors().size == 0   # open: the oracle's marker is hollow
  plt.close(saved[0])


def test_no_complexity_figure_without_measured_complexity(tmp_path, monkeypatch):
  """Results that record no compute (stored before it was measured, or estimates scored by score.py)."""
  monkeypatch.setattr(plots, "metric_figure", lambda *args, **kwargs: None)
  _fake_workdir(tmp_path, ["hpss_repet"])
  page = build_report(tmp_path, ["hpss_repet"]).read_text()
  assert "complexity.png" not in page and "<td>nan</td><td>nan</td></tr>" in page
