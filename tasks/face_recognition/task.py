"""Face recognition as a task: identity folders (or embedded synthetic identities), ArcFace/CosFace margin
head, LFW-style 10-fold verification on clean pairs and on a frozen masked pair split."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, field_validator
from torch import nn

from harness.errors import ConfigError, DataError
from harness.registry import TASKS
from harness.task import Metric, OcclusionPlan, Task
from tasks.face_recognition.data import (
    ALIGNED_SIZE,
    FaceImage,
    FaceTrainSet,
    VerificationSet,
    count_identities,
    pairs_over_folder,
    read_bin,
    read_identity_folder,
)
from tasks.face_recognition.head import RecognitionHead, margin_logits
from tasks.face_recognition.occluders import KINDS, FaceOccluder, build_masked_split
from tasks.face_recognition.outputs import SEVERITY_KINDS, severity_occluders
from tasks.face_recognition.verification import pair_scores, verification_metrics


class FaceRecognitionSettings(BaseModel):
    """The `data:` section of a face recognition config."""

    model_config = ConfigDict(extra="forbid")

    dataset: Literal["synthetic", "folder"] = "synthetic"
    train_root: str | None = None  # identity folder: root/<identity>/*.jpg (+ optional landmarks.txt)
    val_pairs: str | None = None  # LFW-style pairs.txt over val_root
    val_root: str | None = None
    val_bin: str | None = None  # or an insightface verification .bin (e.g. lfw.bin)
    synthetic_train_identities: int = 400
    synthetic_train_images: int = 16
    synthetic_val_identities: int = 150
    synthetic_val_images: int = 8
    synthetic_pairs_per_fold: int = 150
    input_size: int = 112  # network input; must divide 112 (aligned crops are area-resized to it)
    embedding_size: int = 512
    dropout: float = 0.0
    margin: Literal["arcface", "cosface"] = "arcface"
    scale: float = 64.0  # s
    margin_m: float = 0.5  # m (radians for ArcFace; 0.35 is CosFace's usual value)
    flip: bool = True  # random horizontal flip in training
    flip_test: bool = True  # embedding of image + flipped image
    occluders: list[str] = list(KINDS)  # occluders of the training twins
    val_occluders: list[str] = ["mask"]  # occluder of the frozen masked split (masked vs clean)
    cache_dir: str | None = None

    @field_validator("input_size")
    @classmethod
    def _divides_112(cls, value: int) -> int:
        if value <= 0 or ALIGNED_SIZE % value:
            raise ValueError(f"must divide {ALIGNED_SIZE} (e.g. 56 or 112)")
        return value

    @field_validator("occluders", "val_occluders")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        unknown = [k for k in value if k not in KINDS]
        if unknown or not value:
            raise ValueError(f"expected a non-empty list of {', '.join(KINDS)}")
        return value


def _digest(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


@TASKS.register("face_recognition")
class FaceRecognitionTask(Task):
    """Open-set face verification trained as identity classification with an additive-margin head.

    Example:
        >>> task = FaceRecognitionTask(FaceRecognitionSettings(input_size=56))
        >>> train, splits = task.datasets(seed=0, occlusion=plan)  # doctest: +SKIP
    """

    Settings = FaceRecognitionSettings
    metrics = (
        Metric("accuracy"),
        Metric("tar_far_1e-3"),
        Metric("tar_far_1e-4"),
        Metric("accuracy_std", higher_is_better=False),
    )
    primary_metric = "accuracy"
    occluded_split = "masked_val"
    severity_levels = tuple(SEVERITY_KINDS)
    # The occluders are placed and sized from the five landmarks; no patch library, size or rotation.
    ignored_occlusion_keys = ("size_range", "max_rotation", "max_patches")
    prediction_format = "csv"

    def __init__(self, settings: FaceRecognitionSettings, cache_dir: Path | None = None):
        if cache_dir is None and settings.cache_dir:
            cache_dir = Path(settings.cache_dir)
        super().__init__(settings, cache_dir)
        self._provenance: dict[str, Any] = {}
        self._num_classes: int | None = None

    @classmethod
    def unused_data_keys(cls, settings: FaceRecognitionSettings) -> dict[str, str]:
        if settings.dataset != "synthetic":
            return {}
        why = "the embedded synthetic identities are generated, they read no folder (set data.dataset)"
        keys = ("train_root", "val_pairs", "val_root", "val_bin")
        return {f"data.{k}": why for k in keys if getattr(settings, k) is not None}

    @property
    def dataset_name(self) -> str:
        s = self.settings
        if s.dataset == "synthetic":
            return "synthetic-faces"
        return f"{Path(s.train_root or 'folder').name}+{Path(s.val_bin or s.val_pairs or 'pairs').stem}"

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.settings.input_size, self.settings.input_size)

    # ------------------------------------------------------------------------------------------- data

    def _synthetic(self, seed: int) -> tuple[Path, Path, Path]:
        from tasks.face_recognition.synthetic import ensure_synthetic_faces

        s = self.settings
        return ensure_synthetic_faces(
            self.cache_dir / "face_recognition", seed=seed, train_identities=s.synthetic_train_identities,
            train_images=s.synthetic_train_images, val_identities=s.synthetic_val_identities,
            val_images=s.synthetic_val_images, pairs_per_fold=s.synthetic_pairs_per_fold,
        )  # fmt: skip

    def num_classes(self) -> int:
        """Training identities: the margin classifier's size (known before any image is read)."""
        if self._num_classes is None:
            s = self.settings
            if s.dataset == "synthetic":
                self._num_classes = s.synthetic_train_identities
            else:
                if not s.train_root:
                    raise DataError(
                        "data.train_root: an identity folder is required when data.dataset is 'folder'"
                    )
                self._num_classes = count_identities(Path(s.train_root).expanduser())
                if self._num_classes == 0:
                    raise DataError(f"{s.train_root}: no identity folder with images")
        return self._num_classes

    def _val_source(self, seed: int) -> tuple[list[FaceImage], np.ndarray, np.ndarray, str, str]:
        """(images, pairs, is-same, a name, a digest) of the clean verification pairs."""
        s = self.settings
        if s.dataset == "synthetic":
            _, val_root, pairs_file = self._synthetic(seed)
            images, pairs, same = pairs_over_folder(pairs_file, val_root)
            return images, pairs, same, "synthetic", _digest(pairs_file.read_bytes(), str(pairs_file))
        if s.val_bin:
            path = Path(s.val_bin).expanduser()
            images, pairs, same = read_bin(path)
            return (
                images,
                pairs,
                same,
                path.stem,
                _digest(path.stat().st_size, str(path.resolve()), same.tobytes()),
            )
        if not (s.val_pairs and s.val_root):
            raise DataError(
                "data.val_pairs and data.val_root (or data.val_bin) are required when data.dataset is "
                "'folder'"
            )
        pairs_file = Path(s.val_pairs).expanduser()
        images, pairs, same = pairs_over_folder(pairs_file, Path(s.val_root).expanduser())
        return (
            images,
            pairs,
            same,
            pairs_file.stem,
            _digest(pairs_file.read_bytes(), str(Path(s.val_root).resolve())),
        )

    def datasets(self, *, seed: int, occlusion: OcclusionPlan):
        s = self.settings
        train_root = self._synthetic(seed)[0] if s.dataset == "synthetic" else Path(s.train_root or "")
        if s.dataset == "folder" and not s.train_root:
            raise DataError("data.train_root: an identity folder is required when data.dataset is 'folder'")
        images, labels, names = read_identity_folder(train_root.expanduser())
        if len(names) != self.num_classes():
            raise DataError(
                f"{train_root}: {len(names)} identities, but the head was sized for {self.num_classes()}"
            )
        occluder = FaceOccluder(occlusion.train, tuple(s.occluders)) if occlusion.train is not None else None
        train = FaceTrainSet(
            images, labels, input_size=s.input_size, flip=s.flip, occluder=occluder, seed=seed
        )

        val_images, pairs, same, name, digest = self._val_source(seed)
        clean = VerificationSet(val_images, pairs, same, input_size=s.input_size, name=name)
        val_settings, val_kinds = occlusion.val, tuple(s.val_occluders)
        if occlusion.val_severity is not None:
            if val_kinds != ("mask",):
                raise ConfigError(
                    "data.val_occluders: the severity ladder (occlusion.val_severity) sets them"
                )
            val_settings, val_kinds = severity_occluders(occlusion.val_severity)
        masked_paths, occluded = build_masked_split(
            clean, self.cache_dir / "face_recognition" / "masked_val", settings=val_settings,
            kinds=val_kinds, seed=occlusion.val_seed, source_digest=digest,
        )  # fmt: skip
        masked = _masked_pairs(clean, masked_paths, occluded)
        self._provenance = {
            "train_root": str(train_root),
            "train_identities": len(names),
            "train_images": len(images),
            "val_source": name,
            "val_sha256": digest,
            "val_pairs": len(pairs),
            "val_matched_pairs": int(same.sum()),
            "masked_val_images": len(masked_paths),
            "masked_val_folder": str(masked_paths[0].parent) if masked_paths else None,
            "box_source": "five landmarks"
            if any(i.landmarks is not None for i in images[:50])
            else "pre-aligned",
        }
        return train, {self.clean_split: clean, self.occluded_split: masked}

    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)

    # ------------------------------------------------------------------------------------------ model

    def head(self, in_channels: int, in_stride: int) -> nn.Module:
        side = math.ceil(self.settings.input_size / in_stride)
        return RecognitionHead(
            in_channels, (side, side), self.num_classes(), self.settings.embedding_size, self.settings.dropout
        )

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        s = self.settings
        logits = margin_logits(
            outputs["cosine"], batch["label"], kind=s.margin, scale=s.scale, margin=s.margin_m
        )
        return F.cross_entropy(logits, batch["label"])

    def predict(self, model: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]:
        images = batch["image"]
        embedding = model(images)["embedding"].float()
        if self.settings.flip_test:
            embedding = embedding + model(images.flip(-1))["embedding"].float()
        embedding = embedding.cpu().numpy()
        return [
            {"index": int(index), "embedding": embedding[i]} for i, index in enumerate(batch["meta"]["index"])
        ]

    def evaluate(self, predictions: list[dict[str, Any]], dataset: VerificationSet) -> dict[str, float]:
        embeddings = np.zeros((len(dataset), self.settings.embedding_size), dtype=np.float32)
        for p in predictions:
            embeddings[p["index"]] = p["embedding"]
        stats = verification_metrics(pair_scores(embeddings, dataset.pairs), dataset.same)
        return {m.name: stats[m.name] for m in self.metrics}

    def write_predictions(
        self, predictions: list[dict[str, Any]], dataset: VerificationSet, path: Path
    ) -> str:
        from tasks.face_recognition.outputs import write_pair_scores

        return write_pair_scores(predictions, dataset, self.settings.embedding_size, path)

    def deployable(self, model: nn.Module) -> tuple[nn.Module, torch.Tensor]:
        from tasks.face_recognition.export import EmbeddingModel

        return EmbeddingModel(model, self.settings.input_size), torch.zeros(1, 3, ALIGNED_SIZE, ALIGNED_SIZE)


def _masked_pairs(clean: VerificationSet, masked_paths: list[Path], occluded: np.ndarray) -> VerificationSet:
    """Pairs of (clean first image, occluded second image), over just the images they use."""
    firsts = np.unique(clean.pairs[:, 0])
    images = [clean.images[int(i)] for i in firsts]
    images += [FaceImage(path=p, where=str(p)) for p in masked_paths]
    first_at = {int(v): k for k, v in enumerate(firsts)}
    second_at = {int(v): len(firsts) + k for k, v in enumerate(occluded)}
    pairs = np.array([[first_at[int(a)], second_at[int(b)]] for a, b in clean.pairs], dtype=np.int64)
    return VerificationSet(
        images, pairs, clean.same, input_size=clean.input_size, name=f"{clean.name}_masked"
    )
