"""Evaluation: the loop of ``evaluate.py`` (`loop`: separate, score with BSSEval v4, write museval
JSON), scoring any tool's estimates (`score`) and the HTML report (`report`)."""
