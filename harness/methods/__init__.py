"""What one training step computes: the Method contract (networks, optimizer groups, training_step, role,
prerequisite), D-Slope, and the imitation term it shares with distillation (baselines/ register the others
the same way). May import models and core; never the trainer or a run."""
