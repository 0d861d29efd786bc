"""Names of the files a run dir holds, for every module that reads or writes one (trainer callbacks, resume,
export, eval, distillation's teacher), and the one check of a training checkpoint against a model."""

from pathlib import Path

from harness.core.errors import CheckpointError

CHECKPOINT_NAME = "checkpoint.pt"  # full training state: every epoch, at the end, and on interrupt


def state_mismatch(own: dict, saved: dict) -> str | None:
    """Why a saved state dict does not fit a module's, e.g. "(2 missing, 0 unexpected, 1 mis-sized
    tensors)"; None when it fits exactly."""
    mis_sized = [k for k, v in saved.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing, unexpected = own.keys() - saved.keys(), saved.keys() - own.keys()
    if missing or unexpected or mis_sized:
        return f"({len(missing)} missing, {len(unexpected)} unexpected, {len(mis_sized)} mis-sized tensors)"
    return None


def check_checkpoint(
    saved: dict, own_state: dict, tags: dict[str, str], *, path: Path, label: str, config: str
) -> None:
    """A training checkpoint against the model it is about to load into (resume; eval, predict, export): it
    was written with the config's tags (task, method, backbone) and its weights fit the model exactly.

    Args:
        saved: the loaded checkpoint (its `tags` and `method` weights).
        own_state: the model's state dict.
        tags: what the config says.
        path, label, config: for messages, e.g. "checkpoint " or "eval: ", and where the config's values come
            from ("the run's config", a config.yaml).

    Raises:
        CheckpointError: naming the differing tag, or how many tensors do not fit.
    """
    for key, value in (saved.get("tags") or {}).items():
        if key in tags and tags[key] != value:
            raise CheckpointError(
                f"{label}{path} was trained with {key} '{value}', but {config} says '{tags[key]}'"
            )
    mismatch = state_mismatch(own_state, saved["method"])
    if mismatch:
        raise CheckpointError(
            f"{label}{path} does not fit the model {mismatch}: written for another task or backbone?"
        )


def run_reference(run_dir: Path, work_dir: str | Path) -> str:
    """How a config names another run (a distillation teacher): its run id when it lives in `work_dir`, so
    the config and its hash stay the same on any machine and after a move; else its path."""
    run_dir = Path(run_dir).resolve()
    return run_dir.name if run_dir.parent == Path(work_dir).resolve() else str(run_dir)


def resolve_run_reference(reference: str, work_dir: str | Path) -> Path:
    """The run dir a `run_reference` names: a run id (no '/') is a folder of `work_dir`, a path is itself."""
    return Path(work_dir) / reference if "/" not in reference else Path(reference)
