"""Training: the loop (`loop`: train state, pure train step, checkpoints and validation), the objective
built from ``config.loss`` (`objective`) and the waveform and spectral losses (`losses`).

Above the separators: training reads data (`mssjax.data`), builds models (`mssjax.models`) and writes
workdirs (`mssjax.checkpoints`) and weights files (`mssjax.weights`), which inference reads without
importing anything here.
"""
