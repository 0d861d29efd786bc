"""Names of the files a run dir holds, for every module that reads or writes one (trainer callbacks, resume,
export, eval, distillation's teacher)."""

CHECKPOINT_NAME = "checkpoint.pt"  # full training state: every epoch, at the end, and on interrupt
