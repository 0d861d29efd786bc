"""Names of the files a run dir holds, for every module that reads or writes one (trainer callbacks, resume,
export, eval, distillation's teacher), and the one check of a checkpoint's weights against a model."""

CHECKPOINT_NAME = "checkpoint.pt"  # full training state: every epoch, at the end, and on interrupt


def state_mismatch(own: dict, saved: dict) -> str | None:
    """Why a saved state dict does not fit a module's, e.g. "(2 missing, 0 unexpected, 1 mis-sized
    tensors)"; None when it fits exactly."""
    mis_sized = [k for k, v in saved.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing, unexpected = own.keys() - saved.keys(), saved.keys() - own.keys()
    if missing or unexpected or mis_sized:
        return f"({len(missing)} missing, {len(unexpected)} unexpected, {len(mis_sized)} mis-sized tensors)"
    return None
