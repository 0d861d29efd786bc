"""Weights files into backbones, all or nothing: read without running pickled code, the backbone's part of a
whole-model checkpoint picked out, and refused with the first missing or misshapen tensor before anything is
loaded, so a partial or mismatched file never leaves a backbone half loaded or silently random.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from harness.core.errors import CheckpointError
from harness.core.io import safe_torch_load
from harness.models.weights import KEYWORDS


def read_weights(path: Path, what: str = "model.pretrained") -> dict[str, torch.Tensor]:
    """The tensors of a weights file, read without running pickled code: safetensors, or torch.load with
    weights_only=True. A checkpoint's `state_dict` / `model` entry (mmengine, the Swin release) and
    DataParallel's `module.` prefix are unwrapped, as timm's and mmengine's loaders do.

    Raises:
        CheckpointError: missing, corrupt, unsafe, or holding no tensors.
    """
    path = Path(path)
    if not path.is_file():
        expected = f"a weights file or one of {', '.join(KEYWORDS)}"
        raise CheckpointError(f"{what}: file not found: {path} (expected {expected})")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(path)
        except Exception as err:  # noqa: BLE001  (safetensors raises its own error type for bad files)
            raise CheckpointError(f"{what} {path} is corrupt: {str(err).splitlines()[0]}") from None
    else:
        state = safe_torch_load(path, what)
    if isinstance(state, dict):
        inner = next((state[k] for k in ("state_dict", "model") if isinstance(state.get(k), dict)), None)
        state = inner if inner is not None else state
    items = state.items() if isinstance(state, dict) else ()
    tensors = {k: v for k, v in items if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{what}: {path} holds no tensors (a {type(state).__name__}, not a state dict)")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    return tensors


def backbone_part(state: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor], name=lambda k: k) -> dict:
    """A whole-model checkpoint (mmpose, mmpretrain, RTMDet) names the backbone's tensors `backbone.<name>`:
    keep those, prefix stripped, when they cover more of the backbone than the file's plain names."""
    stripped = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    wanted = {name(k) for k in own}
    return stripped if len(wanted & stripped.keys()) > len(wanted & state.keys()) else state


def check_complete(
    own: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    path: Path,
    *,
    name: Callable[[str], str] = lambda k: k,
    keep_initialised: tuple[str, ...] = (),
    shapes: bool = True,
) -> None:
    """Refuse, before anything is loaded, a file that does not hold every tensor of the backbone.

    Args:
        own: the backbone's state dict.
        state: the file's tensors.
        path: the file (for the message).
        name: the file's name for one of the backbone's keys.
        keep_initialised: key prefixes the reference loader leaves at their initialisation too (declared per
            backbone, e.g. an output norm the classification checkpoint has no counterpart of).
        shapes: also compare shapes (off where the loader adapts them, e.g. ViT position embeddings).

    Raises:
        CheckpointError: naming the first missing or differently shaped tensor.
    """
    # BatchNorm's step counter is not a weight; torch fills it in when a file lacks it.
    needed = [k for k in own if not k.endswith("num_batches_tracked") and not k.startswith(keep_initialised)]
    missing = [k for k in needed if name(k) not in state]
    unfit = f"model.pretrained: {path} does not fit the backbone"
    if missing:
        raise CheckpointError(
            f"{unfit}: {len(missing)} of its {len(needed)} tensors are not in the file "
            f"(first: {missing[0]}); nothing was loaded"
        )
    wrong = [k for k in needed if shapes and tuple(state[name(k)].shape) != tuple(own[k].shape)]
    if wrong:
        first = wrong[0]
        raise CheckpointError(
            f"{unfit}: {len(wrong)} tensors differ in shape (first: {first} "
            f"{tuple(state[name(first)].shape)} in the file vs {tuple(own[first].shape)}); nothing was loaded"
        )


def load_backbone_weights(
    body: nn.Module,
    path: Path,
    *,
    convert: Callable[[dict], dict] | None = None,
    keep_initialised: tuple[str, ...] = (),
) -> None:
    """Load a weights file into `body`, all tensors or none; never downloads.

    Args:
        body: the backbone's module.
        path: a weights file (a plain state dict, or a whole model's with `backbone.` keys).
        convert: turns a file in another codebase's naming into the body's (e.g. the Swin release's).
        keep_initialised: see `check_complete`.

    Raises:
        CheckpointError: unreadable, unsafe, or not holding every tensor of `body` in its shape.
    """
    path = Path(path)
    state = read_weights(path)
    state = backbone_part(convert(state) if convert else state, body.state_dict())
    own = body.state_dict()
    check_complete(own, state, path, keep_initialised=keep_initialised)
    body.load_state_dict({k: state[k] for k in own if k in state}, strict=False)
