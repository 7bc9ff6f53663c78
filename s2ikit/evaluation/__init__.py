"""Evaluation commands: `evaluate` (the metrics over every test caption, report.md) and `select` (the best kept
generator by the judge on training captions)."""
