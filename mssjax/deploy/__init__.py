"""Deployment: a separator as a portable `jax.export` module and JSON, the network as ONNX (`export`),
and the standalone loader (`exported`: one file, jax and numpy only, copied beside the module).

Nothing is imported here: `exported` must stay importable on its own, and `mssjax.separate` shares its
overlap-add arithmetic.
"""
