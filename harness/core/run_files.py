"""Names of the files a run dir holds, for every module that reads or writes one (trainer callbacks, resume,
export, eval, distillation's teacher), and the one check of a checkpoint's weights against a model."""

from pathlib import Path

CHECKPOINT_NAME = "checkpoint.pt"  # full training state: every epoch, at the end, and on interrupt


def state_mismatch(own: dict, saved: dict) -> str | None:
    """Why a saved state dict does not fit a module's, e.g. "(2 missing, 0 unexpected, 1 mis-sized
    tensors)"; None when it fits exactly."""
    mis_sized = [k for k, v in saved.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing, unexpected = own.keys() - saved.keys(), saved.keys() - own.keys()
    if missing or unexpected or mis_sized:
        return f"({len(missing)} missing, {len(unexpected)} unexpected, {len(mis_sized)} mis-sized tensors)"
    return None


def run_reference(run_dir: Path, work_dir: str | Path) -> str:
    """How a config names another run (a distillation teacher): its run id when it lives in `work_dir`, so
    the config and its hash stay the same on any machine and after a move; else its path."""
    run_dir = Path(run_dir).resolve()
    return run_dir.name if run_dir.parent == Path(work_dir).resolve() else str(run_dir)


def resolve_run_reference(reference: str, work_dir: str | Path) -> Path:
    """The run dir a `run_reference` names: a run id (no '/') is a folder of `work_dir`, a path is itself."""
    return Path(work_dir) / reference if "/" not in reference else Path(reference)
