"""Scoring and trained runs: evaluate_split (task.predict -> task.evaluate, sharded over ranks),
prediction files, the record of one scored split, a run dir loaded back (trained_run), and what runs on
one without training: `harness eval` (evaluate_run), `harness predict` (predict_images), `harness export`.
May import models and core; never train, run or above."""
