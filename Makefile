# mssjax: every target creates the virtual environment it needs on first use.
#
#   make demo    separate and evaluate every method on generated songs, write the report
#   make test    the whole test suite (installs the reference libraries too)
#   make bench   the benchmarks against librosa, scipy, scikit-learn and museval

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORKDIR ?= outputs/demo

.PHONY: demo test bench sysdeps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.runtime

# Debian programs the reference libraries (musdb/museval need ffmpeg) and the
# report's browser test (chromium) use. Installed when running as root.
SYSTEM_PROGRAMS := ffmpeg ffprobe chromium
sysdeps:
	@missing=""; for p in $(SYSTEM_PROGRAMS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing ffmpeg and chromium (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg chromium >/dev/null; \
	  else echo "note: missing$$missing; the tests that need them are skipped"; fi; \
	fi

demo: $(VENV)/.runtime
	$(BIN)/python evaluate.py --config configs/evaluate.py --workdir $(WORKDIR)

# Test files are spread over this many worker processes (pytest-xdist; a file's tests share a worker
# and its module fixtures; tests/conftest.py starts the longest files first). Default: the CPU count,
# at most 4 (each worker's JAX takes up to ~5 GB).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

test: $(VENV)/.dev sysdeps
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The speed comparisons against the reference libraries, measured in the same run (minutes each). The
# studies (architectures, ensembles, two_stems, wiener, loss_terms, search_classical, classical_quality,
# long_song, separate_library, multihost, median_filter, device) train or separate for tens of minutes to
# hours and are run one by one with the command in their docstring.
BENCHMARKS = spectral audio classical metrics score export data train

bench: $(VENV)/.dev sysdeps
	for b in $(BENCHMARKS); do $(BIN)/python benchmarks/$$b.py || exit 1; done

clean:
	rm -rf outputs .pytest_cache
