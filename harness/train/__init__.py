"""The training loop: the single Trainer (device, precision, backward, optimizers, limits, NaN guard, full
checkpoint and resume), its callbacks (checkpoint, metrics log, periodic eval, progress), and the embedded
pretraining stage that trains a backbone once with it. May import methods, models and core; never
evaluate, run or above."""
