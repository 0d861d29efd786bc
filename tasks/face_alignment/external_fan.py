"""`--model face_alignment:2DFAN-4`: the face-alignment package's FAN on the 68-point 300W layout.

Everything between the face box and the landmarks is the package's own, as `FaceAlignment.
get_landmarks_from_image` does it for a given box (tested against it): the image read as RGB (`get_image`),
centre moved up by 12 % of the box height, scale = (w + h) / 195 (the S3FD detector's reference scale),
the 256x256 `crop` in [0, 1], heatmaps of the last hourglass plus the flipped crop's (`flip`), and
`get_preds_fromhm` back to image pixels. The harness gives the split's face boxes instead of a detector's.
FAN predicts iBUG's 68 points, so it scores only splits in that layout (300W, or the embedded synthetic faces
with `data.synthetic_layout: 300w`); any other is refused in one line. Weights: a local FAN state dict (the
package's published `.pth.tar` files are such state dicts), loaded with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from harness.core.errors import CheckpointError, ConfigError
from harness.core.external import ExternalModel, ModelSpec, Progress
from harness.core.io import safe_torch_load
from harness.core.run_files import state_mismatch
from tasks.face_alignment.landmarks import Layout

FAN_LAYOUT = "300w"  # iBUG's 68 points
_VARIANT = re.compile(r"^([23])DFAN-([1-4])$")


def fan_modules(spec: ModelSpec) -> int:
    """Hourglass count of a `2DFAN-<n>` variant.

    Raises:
        ConfigError: a 3D variant, or a name that is not a FAN variant.
    """
    match = _VARIANT.match(spec.target)
    if match is None:
        raise ConfigError(f"--model {spec.text}: not a face-alignment variant; expected 2DFAN-4 (or 1..3)")
    if match.group(1) == "3":
        raise ConfigError(f"--model {spec.text}: a 3D model (with a depth network); only 2D FANs are scored")
    return int(match.group(2))


class FaceAlignmentFAN(ExternalModel):
    """face-alignment's 2D FAN with local weights, for splits in the 68-point 300W layout.

    Args:
        spec: `face_alignment:2DFAN-<n>`.
        checkpoint: the FAN state dict file.
        layout: the splits' landmark layout; it must be 300W's.
        flip_test: add the flipped crop's heatmaps (`FaceAlignment(flip_input=True)`, its default).

    Raises:
        ConfigError: a 3D or unknown variant, a split layout other than 300W, no checkpoint.
        CheckpointError: weights that are unsafe, corrupt or not of this FAN.
    """

    def __init__(self, spec: ModelSpec, checkpoint: Path | None, *, layout: Layout, flip_test: bool):
        from face_alignment.models import FAN

        modules = fan_modules(spec)
        if layout.name != FAN_LAYOUT:
            raise ConfigError(
                f"--model {spec.text}: predicts the 68 points of 300W, the splits have the "
                f"{layout.num_landmarks} of {layout.name} (score it on data.dataset=300w, or on the embedded "
                "faces with data.synthetic_layout=300w)"
            )
        if checkpoint is None:
            raise ConfigError(f"--model {spec.text}: --checkpoint (a local FAN state dict) is required")
        self.spec, self.checkpoint, self.flip_test = spec, Path(checkpoint), flip_test
        state = safe_torch_load(self.checkpoint, "--checkpoint")
        self.net = FAN(modules)
        mismatch = state_mismatch(self.net.state_dict(), state) if isinstance(state, dict) else "(not a dict)"
        if mismatch:
            raise CheckpointError(f"--checkpoint {self.checkpoint.name} does not fit {spec.text} {mismatch}")
        self.net.load_state_dict(state)
        self.net.eval()

    def describe(self) -> dict[str, Any]:
        import importlib.metadata

        from face_alignment.utils import REFERENCE_SCALE

        return {
            "library": f"face-alignment {importlib.metadata.version('face-alignment')}",
            "input_size": [256, 256],
            "reference_scale": REFERENCE_SCALE,
            "flip_test": self.flip_test,
        }

    def predict_split(
        self, dataset: Dataset, *, device: torch.device, batch_size: int, progress: Progress
    ) -> list[dict[str, Any]]:
        self.net.to(device)
        records = dataset.records
        predictions = []
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            crops, frames = zip(*(self._crop(r) for r in chunk), strict=True)
            heatmaps = self._heatmaps(torch.from_numpy(np.stack(crops)).to(device))
            for record, (center, scale), maps in zip(chunk, frames, heatmaps, strict=True):
                predictions.append(_prediction(record, maps[None], center, scale))
            progress(len(chunk))
        return predictions

    def _crop(self, record) -> tuple[np.ndarray, tuple[np.ndarray, float]]:
        """The package's 256x256 crop of the face box (CHW float in [0, 1]) and its centre and scale."""
        from face_alignment.utils import CENTER_Y_OFFSET, REFERENCE_SCALE, crop, get_image

        x, y, w, h = (float(v) for v in record.box)
        center = np.array([x + w / 2.0, y + h / 2.0 - h * CENTER_Y_OFFSET])
        scale = (w + h) / REFERENCE_SCALE
        image = get_image(str(record.image_path))
        return crop(image, center, scale).transpose(2, 0, 1).astype(np.float32) / 255.0, (center, scale)

    @torch.no_grad()
    def _heatmaps(self, crops: torch.Tensor) -> np.ndarray:
        from face_alignment.utils import flip

        out = self.net(crops)[-1]
        if self.flip_test:
            out = out + flip(self.net(flip(crops))[-1], is_label=True)
        return out.float().cpu().numpy()


def _prediction(record, heatmaps: np.ndarray, center: np.ndarray, scale: float) -> dict[str, Any]:
    """The face alignment task's prediction dict from one face's heatmaps (1, 68, 64, 64)."""
    from face_alignment.utils import get_preds_fromhm

    _, points, scores = get_preds_fromhm(heatmaps, center, scale)
    rows = np.concatenate([points.reshape(-1, 2), scores.reshape(-1, 1)], axis=1)
    return {
        "image_id": int(record.image_id),
        "ann_id": int(record.ann_id),
        "keypoints": [round(float(v), 3) for v in rows.reshape(-1)],
    }
