"""Does an SDR or a SIR term help the previews network? Fine-tune the shipped model with each loss.

  python benchmarks/loss_terms.py                 # 200 steps per variant
  python benchmarks/loss_terms.py --steps 100 --filters-len 64

Every variant starts from ``mssjax/pretrained/unet.safetensors`` (``config.init_weights``)
and trains ``--steps`` more steps of ``configs/unet_previews.py`` (same data,
augmentations and batch; constant learning rate ``--lr``, no warm-up) with:

- ``magnitude``: the shipped loss alone (magnitude L1): the control;
- ``+sdr``: plus the negative SDR of the waveforms (`mssjax.training.losses.sdr`);
- ``+sir``: plus the negative BSSEval v4 SIR of each chunk (`mssjax.training.losses.bss_eval_terms`,
  ``--filters-len`` taps: 512 as museval costs ~10x a step here).

Each added term's weight is set so that its gradient norm on the first batch
equals the magnitude term's (printed). The fine-tuned models are then scored on
the 14 MUSDB18 validation previews with BSSEval v4 (evaluate.py's pipeline,
museval's numbers): SDR and SIR medians per target. The previews are prepared
once into ``data_cache/musdb18-7-hq`` (the config's data root) if missing.
Results go to ``outputs/loss_terms/``.
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MUSDB = REPO.parent / "shared" / "data" / "musdb18-7"
OUT = REPO / "outputs" / "loss_terms"
PREPARED = REPO / "data_cache" / "musdb18-7-hq"


def _config(args, weights=None):
  from configs import unet_previews  # pylint: disable=import-outside-toplevel
  from mssjax.separators import network as separator  # pylint: disable=import-outside-toplevel
  config = unet_previews.get_config()
  config.init_weights = str(separator.PRETRAINED)
  config.data.root = str(PREPARED)
  config.num_train_steps = args.steps
  config.eval_every = 0
  config.checkpoint_every = args.steps
  config.optim.schedule = "constant"
  config.optim.learning_rate = args.lr
  config.optim.warmup_steps = 0
  config.loss.filters_len = args.filters_len
  for name, value in (weights or {}).items():
    config.loss.weights[name] = value
  return config


def _grad_norms(args):
  """Gradient norm of the magnitude term and of each added term alone, on the first batch."""
  import jax  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  from mssjax import weights  # pylint: disable=import-outside-toplevel
  from mssjax.training import finetune  # pylint: disable=import-outside-toplevel
  from mssjax.training import loop as train_lib  # pylint: disable=import-outside-toplevel
  from mssjax.training import objective as train_loss  # pylint: disable=import-outside-toplevel
  from mssjax.data import loaders  # pylint: disable=import-outside-toplevel
  config = _config(args)
  state = train_lib.create_train_state(config, jax.random.key(0))
  loaded = finetune.initial_params(config, state.params).params  # the shipped network: every parameter fits
  params = jax.tree.map(jax.numpy.asarray, weights.unflatten(loaded, state.params))
  batch = next(loaders.make_train_iterator(config))
  base = train_loss.loss_spec(config)
  norms = {}
  for name, spec in (("magnitude", base),
                     ("sdr", train_loss.LossSpec("sdr", "magnitude", base.n_fft, base.hop_length, (), base.filters_len)),
                     ("sir", train_loss.LossSpec("sir", "magnitude", base.n_fft, base.hop_length, (), base.filters_len))):
    grads = jax.jit(jax.grad(lambda p, spec=spec: train_loss.compute_loss(state.graphdef, p, batch, spec)))(params)
    norms[name] = float(optax.tree.norm(grads))
  return norms


def _validation_scores(workdir, out):
  from configs import evaluate as evaluate_config  # pylint: disable=import-outside-toplevel
  from mssjax.evaluation import loop as evaluate_lib  # pylint: disable=import-outside-toplevel
  config = evaluate_config.get_config()
  config.update(methods="unet", progress=False)
  config.separators.unet.checkpoint = str(workdir)
  config.data.update(root=str(MUSDB), subset="train", split="valid")
  config.report.enabled = False
  summary = evaluate_lib.evaluate(config, out)
  return {row["target"]: (row["SDR"], row["SIR"]) for row in summary["rows"] if row["method"] == "unet"}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--lr", type=float, default=2e-4)
  parser.add_argument("--filters-len", type=int, default=64)
  parser.add_argument("--variants", default="magnitude,+sdr,+sir")
  args = parser.parse_args()
  from mssjax.training import loop as train_lib  # pylint: disable=import-outside-toplevel
  if not PREPARED.is_dir():
    from mssjax.data import prepare  # pylint: disable=import-outside-toplevel
    prepare.prepare(MUSDB, PREPARED, prepare.Settings(segment=None))
  OUT.mkdir(parents=True, exist_ok=True)
  norms = _grad_norms(args)
  weights = {"magnitude": {}, "+sdr": {"sdr": norms["magnitude"] / norms["sdr"]},
             "+sir": {"sir": norms["magnitude"] / norms["sir"]}}
  print("first-batch gradient norms:", {k: f"{v:.3g}" for k, v in norms.items()},
        "-> weights", {k: {n: f"{w:.3g}" for n, w in v.items()} for k, v in weights.items()}, flush=True)
  results = {}
  for variant in args.variants.split(","):
    workdir = OUT / f"train_{variant.strip('+')}"
    start = time.perf_counter()
    train_lib.train_and_evaluate(_config(args, weights[variant]), workdir, allow_config_change=True)
    seconds = time.perf_counter() - start
    scores = _validation_scores(workdir, OUT / f"eval_{variant.strip('+')}")
    results[variant] = {"train_seconds": seconds, "weights": weights[variant], "scores": scores}
    print(variant, f"{seconds:.0f} s:", {t: f"SDR {s[0]:.2f} SIR {s[1]:.2f}" for t, s in scores.items()}, flush=True)
  (OUT / "results.json").write_text(json.dumps({"args": vars(args), "norms": norms, "results": results}, indent=1))
  print(f"\n{args.steps} steps from the shipped model, lr {args.lr}, SIR filters {args.filters_len} taps; "
        "validation previews, BSSEval v4 medians (dB)")
  print("| loss | vocals SDR / SIR | drums | bass | other | avg SDR | avg SIR |")
  print("|---|---|---|---|---|---|---|")
  for variant, r in results.items():
    s = r["scores"]
    cells = [f"{s[t][0]:.2f} / {s[t][1]:.2f}" for t in ("vocals", "drums", "bass", "other")]
    print(f"| {variant} | " + " | ".join(cells) + f" | {np.mean([s[t][0] for t in s]):.2f} | "
          f"{np.mean([s[t][1] for t in s]):.2f} |")


if __name__ == "__main__":
  main()
