"""The second classical recipe: HPSS, REPET-SIM vocals first, then beta-NMF of the harmonic background.

Run:
  python -c "from mssjax import separators; sep = separators.get('nmf')"
  python evaluate.py --config configs/evaluate.py --workdir workdirs/nmf \
      --set methods=nmf --set data.root=../shared/data/musdb18-7 --set data.subset=test
  python benchmarks/search_classical.py --method nmf   # how the settings were chosen

No training. Vocals are the REPET-SIM foreground of the harmonic part above
200 Hz, drums the percussive part; NMF bases of the rest that hold at least
``bass_share`` of their energy below 200 Hz take their overtones to bass, the
others go to other (`mssjax.separators`' module docstring). Settings chosen
on the 30 training previews of benchmarks/search_classical.py, never on
test. On the 40 MUSDB18 7 s test previews (BSSEval v4, median over frames
then tracks) it reaches:

  (40 of the 40 previews scored)

  | metric | vocals | drums | bass | other | avg |
  |---|---|---|---|---|---|
  | nmf SDR | 3.21 | 2.96 | 1.94 | 0.79 | 2.22 |
  | nmf SIR | 3.42 | 3.55 | 1.66 | 0.27 | 2.23 |
  | nmf SAR | 5.90 | 5.70 | 7.65 | 3.21 | 5.61 |
  | librosa recipe SDR | 1.00 | 0.25 | 1.91 | 0.63 | 0.95 |
"""

from mssjax import separators


def get_config():
  """The default nmf config: `mssjax.separators.nmf_config` (the values live in the library)."""
  return separators.nmf_config()
