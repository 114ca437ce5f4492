"""The shape of the codebase: no import cycle in mssjax, a light inference path, one writer of each format."""

import ast
import pathlib
import subprocess
import sys
import textwrap

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "mssjax"


def _module_name(path):
  return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def _import_graph():
  """``{module: {mssjax modules it imports, at any depth of its code (lazy imports count)}}``."""
  modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
  graph = {}
  for name, path in modules.items():
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        deps.update(a.name for a in node.names)
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
        for alias in node.names:
          deps.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    graph[name] = {d for d in deps if d in modules and d != name}
  return graph


def _cycles(graph):
  cycles, state = [], {}

  def visit(node, stack):
    state[node] = "open"
    for dep in sorted(graph[node]):
      if state.get(dep) == "open":
        cycles.append(stack[stack.index(dep):] + [dep])
      elif dep not in state:
        visit(dep, stack + [dep])
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
  return cycles


def test_the_graph_walker_finds_a_cycle():
  assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]
  assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_mssjax():
  graph = _import_graph()
  assert "mssjax.training.loop" in graph and "mssjax.separators.network" in graph["mssjax.separators"]
  assert _cycles(graph) == []


def test_lower_layers_do_not_reach_up():
  """Core and separators import no training, evaluation, deployment or data code (the standalone
  loader `mssjax.deploy.exported`, which imports nothing of mssjax, holds the overlap-add they share)."""
  graph = _import_graph()
  high = ("mssjax.training", "mssjax.evaluation", "mssjax.deploy", "mssjax.data", "mssjax.cli", "mssjax.commands")
  low = [m for m in graph if m.startswith(("mssjax.separators", "mssjax.models", "mssjax.metrics"))] + [
      "mssjax.spectral", "mssjax.median", "mssjax.decompose", "mssjax.filtering", "mssjax.checkpoints", "mssjax.weights",
      "mssjax.separate", "mssjax.sharded", "mssjax.audio", "mssjax.config"]
  for module in low:
    reach = [d for d in graph[module] if d.startswith(high) and d != "mssjax.deploy.exported"]
    assert reach == [], (module, reach)
  assert not any(d.startswith("mssjax") for d in graph["mssjax.deploy.exported"])


INFERENCE = textwrap.dedent("""
    import sys
    from flax import nnx  # flax.nnx itself imports optax: only what mssjax adds counts
    baseline = set(sys.modules)
    from mssjax import separators
    import mssjax.__main__
    sep = separators.get("hpss_repet")
    unet_config = separators.make_config("unet")
    added = sorted(m for m in set(sys.modules) - baseline
                   if m.split(".")[0] in ("optax", "grain", "tensorflow_datasets", "tensorflow", "orbax")
                   or m in ("mssjax.training.loop", "mssjax.data.loaders", "mssjax.data.pipeline", "mssjax.checkpoints"))
    print("ADDED", added)
""")


def test_the_inference_path_imports_no_training_code():
  """``separators.get`` and the command line load no training loop, grain, TFDS, orbax or more optax."""
  out = subprocess.run([sys.executable, "-c", INFERENCE], cwd=REPO, capture_output=True, text=True, timeout=300,
                       check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "ADDED []" in out.stdout, out.stdout


def test_one_atomic_writer():
  """Only mssjax/fileio.py (and prepare's staged track folders) makes temporary files and moves them."""
  def writes(path):
    code = ast.unparse(ast.parse(path.read_text()))  # code without comments and docstrings' prose
    return any(f"{name}(" in code for name in ("mkstemp", "mkdtemp", "os.replace", "os.rename"))
  users = sorted(str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py") if writes(p))
  assert users == ["mssjax/data/prepare.py", "mssjax/fileio.py"], users


def test_no_caller_tells_separator_kinds_apart():
  """One `Separator` type: no isinstance / hasattr on a separator, and no ``Any`` standing for one."""
  import re  # pylint: disable=import-outside-toplevel
  asks = re.compile(r"(isinstance|hasattr)\((separator|sep|method)\b|(separator|methods?)\s*:\s*(dict\[str, )?Any\b|"
                    r"-> Any:\n\s+\"\"\"The separator")
  offenders = [f"{p.relative_to(REPO)}: {m.group(0)}" for p in PACKAGE.rglob("*.py")
               for m in asks.finditer(p.read_text())]
  assert offenders == []
  assert asks.search("def f(separator: Any, x):") and asks.search("if hasattr(separator, 'fn'):")
