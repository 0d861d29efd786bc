"""`--model mmpose:<config>`: a top-down model of mmpose 1.3 scored on the pose splits as mmpose scores it.

The harness supplies the image and the person box of every sample; everything between is the model's own:
its test pipeline (`LoadImage`, `GetBBoxCenterScale`, `TopdownAffine` at the config's input size,
`PackPoseInputs`), its data preprocessor (mean, std, BGR -> RGB) and its `test_step` (flip test as its
`test_cfg` says, the codec's decoding: MSRA heatmap, UDP, DARK, SimCC / RTMCC), which returns keypoints in
image pixels. So the keypoints equal `mmpose.apis.inference_topdown` on the same image and box (tested).
The pose score is the harness's (box score x mean confidence of the joints above 0.2), which is also
CocoMetric's rescoring, so the recorded AP is mmpose's on the same predictions (tested).

Configs are found by name in the installed package (`mmpose/.mim/configs/**/<name>.py`) or given as a
`.py` path; the weights are a local file loaded with `torch.load(weights_only=True)` (an mmengine
checkpoint's `state_dict`, or a plain state dict), never fetched.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from harness.core.errors import CheckpointError, ConfigError
from harness.core.external import ExternalModel, ModelSpec, Progress
from harness.core.io import safe_torch_load
from harness.core.run_files import state_mismatch
from harness.models.mmpose_imports import INSTALL_HINT, extra_status, import_mmpose_models, quiet_mmengine
from tasks.common.heatmap_model import keypoint_rows
from tasks.pose.keypoints import KeypointSpec

TOP_DOWN = "TopdownPoseEstimator"
# mmpose's names for joints the harness's layouts call otherwise (CrowdPose's head).
_NAME_ALIASES = {"top_head": "head"}


def configs_root() -> Path:
    """The configs shipped inside the installed mmpose package."""
    import mmpose

    return Path(mmpose.__file__).parent / ".mim" / "configs"


def resolve_config(target: str) -> Path:
    """A `.py` path as given, or the installed config named `target` (`rtmpose-m_8xb256-420e_coco-256x192`).

    Raises:
        ConfigError: no such file or name, with the closest names.
    """
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise ConfigError(f"--model mmpose:{target}: no config file at {path}")
        return path
    found = sorted(configs_root().rglob(f"{target}.py"))
    if not found:
        names = [p.stem for p in configs_root().rglob("*.py") if not p.stem.startswith("_")]
        close = difflib.get_close_matches(target, names, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"--model mmpose:{target}: no such config in mmpose's configs{hint}")
    return found[0]


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The model weights of an mmengine checkpoint (`state_dict`) or of a plain state dict."""
    try:
        saved = safe_torch_load(path, "--checkpoint")
    except CheckpointError as err:
        raise CheckpointError(
            f"{err}; an mmengine checkpoint whose meta holds objects loads after "
            "`torch.save(torch.load(f, weights_only=False)['state_dict'], g)` on a file you trust"
        ) from None
    state = saved.get("state_dict", saved) if isinstance(saved, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"--checkpoint {path}: not a state dict (no tensors under 'state_dict')")
    return {k.removeprefix("module."): v for k, v in state.items()}


class MMPoseTopDown(ExternalModel):
    """An mmpose top-down estimator built from its config, with local weights, for one keypoint layout.

    Args:
        spec: `mmpose:<config name or .py>`.
        checkpoint: the weights file (required: a random model is never scored by accident).
        layout: the keypoint layout of the task's splits; the model must predict exactly it.

    Raises:
        ConfigError: missing extra, unknown config, not a top-down model, another keypoint layout.
        CheckpointError: weights that are unsafe, corrupt or do not fit the config's model.
    """

    def __init__(self, spec: ModelSpec, checkpoint: Path | None, layout: KeypointSpec):
        missing = extra_status()
        if missing is not None:
            raise ConfigError(
                f"--model {spec.text}: mmpose models need the mmpose extra ({missing}); {INSTALL_HINT}"
            )
        if checkpoint is None:
            raise ConfigError(f"--model {spec.text}: --checkpoint (a local .pth of the model) is required")
        self.spec, self.checkpoint = spec, Path(checkpoint)
        self.config_path = resolve_config(spec.target)
        import_mmpose_models()
        from mmengine.config import Config
        from mmengine.dataset import Compose
        from mmengine.registry import init_default_scope

        self.config = Config.fromfile(str(self.config_path))
        model_type = self.config.model.get("type")
        if model_type != TOP_DOWN:
            raise ConfigError(
                f"--model {spec.text}: a {model_type} (bottom-up, 3D or another kind); only top-down "
                f"pose models ({TOP_DOWN}) are scored on person boxes"
            )
        init_default_scope("mmpose")
        self.meta = _dataset_meta(self.config)
        _check_layout(spec, self.meta, layout)
        self.model = _build(self.config, self.checkpoint, spec)
        self.pipeline = Compose(self.config.test_dataloader.dataset.pipeline)

    def describe(self) -> dict[str, Any]:
        test_cfg = dict(self.config.model.get("test_cfg") or {})
        codec = self.config.model.head.get("decoder") or {}
        return {
            "library": f"mmpose {importlib.metadata.version('mmpose')}",
            "input_size": list(codec.get("input_size", [])),
            "codec": codec.get("type"),
            "flip_test": bool(test_cfg.get("flip_test", False)),
        }

    def predict_split(
        self, dataset: Dataset, *, device: torch.device, batch_size: int, progress: Progress
    ) -> list[dict[str, Any]]:
        from mmengine.dataset import pseudo_collate

        self.model.to(device)
        records = dataset.records
        predictions = []
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            batch = pseudo_collate([self.pipeline(self._sample(r)) for r in chunk])
            with torch.no_grad():
                results = self.model.test_step(batch)
            for record, result in zip(chunk, results, strict=True):
                predictions.append(_prediction(record, result.pred_instances))
            progress(len(chunk))
        return predictions

    def _sample(self, record) -> dict[str, Any]:
        """What `inference_topdown` hands the pipeline for one box: image path, xyxy box, score 1."""
        x, y, w, h = (float(v) for v in record.box)
        return {
            "img_path": str(record.image_path),
            "bbox": np.array([[x, y, x + w, y + h]], dtype=np.float32),
            "bbox_score": np.ones(1, dtype=np.float32),
            **self.meta,
        }


def _prediction(record, instances) -> dict[str, Any]:
    """The pose task's prediction dict (as `PoseTask.predict` makes it) from mmpose's pred_instances."""
    points = np.asarray(instances.keypoints, dtype=np.float64)[:1]  # (1, K, 2): one box, one pose
    scores = np.asarray(instances.keypoint_scores, dtype=np.float64)[:1]
    confident = scores[0][scores[0] > 0.2]
    score = float(record.score) * (float(confident.mean()) if confident.size else 0.0)
    return {
        "image_id": int(record.image_id),
        "ann_id": int(record.ann_id),
        "category_id": 1,
        "keypoints": keypoint_rows(points, scores)[0],
        "score": round(score, 6),
        "box": [round(float(v), 2) for v in record.box],
    }


def _dataset_meta(config) -> dict[str, Any]:
    """The keypoint metainfo of the config's test dataset (names, flip indices, sigmas)."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.registry import DATASETS

    dataset = config.test_dataloader.dataset
    metainfo = dataset.get("metainfo") or DATASETS.get(dataset.type).METAINFO
    with warnings.catch_warnings():  # "configs/_base_/... does not exist, the package's is used": as meant
        warnings.filterwarnings("ignore", message="The metainfo config file")
        return parse_pose_metainfo(dict(metainfo))


def _check_layout(spec: ModelSpec, meta: dict[str, Any], layout: KeypointSpec) -> None:
    names = [_NAME_ALIASES.get(meta["keypoint_id2name"][i], meta["keypoint_id2name"][i])
             for i in range(meta["num_keypoints"])]  # fmt: skip
    if tuple(names) != tuple(layout.keypoints):
        raise ConfigError(
            f"--model {spec.text}: predicts the {len(names)} keypoints of {meta.get('dataset_name')}, the "
            f"splits have the {layout.num_keypoints} of {layout.name} (a layout the model does not predict)"
        )


def _build(config, checkpoint: Path, spec: ModelSpec) -> torch.nn.Module:
    """The estimator of `config` in eval mode with the weights of `checkpoint`, checked to fit exactly."""
    from mmengine.model.utils import revert_sync_batchnorm
    from mmpose.models.builder import build_pose_estimator

    model_cfg = config.model.copy()
    model_cfg.train_cfg = None
    if "init_cfg" in model_cfg.backbone:  # a pretrained-backbone URL: never fetched, the weights follow
        model_cfg.backbone.init_cfg = None
    with quiet_mmengine():
        model = revert_sync_batchnorm(build_pose_estimator(model_cfg))
    state = _state_dict(checkpoint)
    mismatch = state_mismatch(model.state_dict(), state)
    if mismatch:
        raise CheckpointError(
            f"--checkpoint {checkpoint.name} does not fit the model of {spec.text} {mismatch}: "
            "weights of another config?"
        )
    model.load_state_dict(state)
    return model.eval()
