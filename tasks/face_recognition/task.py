"""Face recognition as a task: identity folders, insightface label lists or RecordIO (or embedded synthetic
identities), ArcFace/CosFace margin head (optionally Partial FC), LFW-style 10-fold verification on clean
pairs and on a frozen masked pair split (one pair per .bin of a verification suite), IJB-B/C 1:1.

One module on purpose (~440 lines): the task contract over four training layouts and three verification
formats; each format's reading lives in data.py / recordio.py / ijb.py, what is left is the wiring."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from torch import nn

from harness.core.errors import ConfigError, DataError
from harness.core.external import ExternalModel, ModelSpec
from harness.core.registry import TASKS
from harness.core.task import Metric, OcclusionPlan, Task
from tasks.face_recognition.data import (
    ALIGNED_SIZE,
    FaceImage,
    FaceTrainSet,
    VerificationSet,
    pairs_over_folder,
    read_bin,
)
from tasks.face_recognition.head import RecognitionHead, margin_logits
from tasks.face_recognition.ijb import FARS, IJBSet, collate_embeddings, far_name, ijb_metrics, read_ijb
from tasks.face_recognition.occluders import KINDS, FaceOccluder, build_masked_split
from tasks.face_recognition.outputs import SEVERITY_KINDS, severity_occluders
from tasks.face_recognition.partial_fc import sample_count, sampled_cosine
from tasks.face_recognition.sources import train_source
from tasks.face_recognition.verification import not_computable, pair_scores, verification_metrics


class FaceRecognitionSettings(BaseModel):
    """The `data:` section of a face recognition config."""

    model_config = ConfigDict(extra="forbid")

    # folder: root/<identity>/*.jpg (+ optional landmarks.txt); list: root/label.txt; rec: root/train.rec
    dataset: Literal["synthetic", "folder", "list", "rec"] = "synthetic"
    train_root: str | None = None
    val_pairs: str | None = None  # LFW-style pairs.txt over val_root
    val_root: str | None = None  # LFW folder, or the folder of the val_bins (default: train_root)
    val_bin: str | None = None  # or an insightface verification .bin (e.g. lfw.bin)
    val_bins: list[str] = []  # or a suite: <val_root>/<name>.bin each, e.g. [lfw, cfp_fp, agedb_30]
    ijb_root: str | None = None  # IJB-B/C folder with meta/ and loose_crop/ (an extra split)
    ijb_target: Literal["IJBB", "IJBC"] = "IJBC"
    ijb_detector_score: bool = True  # weight image features by the faceness score, as eval_ijbc.py does
    sample_rate: float = 1.0  # Partial FC: fraction of class centres per batch (1.0: full softmax)
    # The embedded data is a fixed benchmark: identities and images come from this seed, not the run seed.
    data_seed: int = 0
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

    @field_validator("sample_rate")
    @classmethod
    def _rate(cls, value: float) -> float:
        if not 0.0 < value <= 1.0:
            raise ValueError("must be in (0, 1] (1.0 keeps every class centre)")
        return value

    @field_validator("val_bins")
    @classmethod
    def _bin_names(cls, value: list[str]) -> list[str]:
        bad = [n for n in value if not n or "/" in n or "\\" in n or n.endswith(".bin")]
        if bad:
            raise ValueError(
                f"expected set names such as lfw or cfp_fp (files <val_root>/<name>.bin), got {bad}"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"a set is named twice: {value}")
        return value

    @model_validator(mode="after")
    def _one_verification_source(self):
        if self.val_bins and (self.val_bin or self.val_pairs):
            raise ValueError("data.val_bins replaces data.val_bin / data.val_pairs: set one of them")
        return self


# The pretraining identities are drawn from seed PRETRAIN_SEED_OFFSET + data_seed: other people than the
# benchmark's train and val identities (drawn from data_seed).
PRETRAIN_SEED_OFFSET = 10_000


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
    external_kinds = ("onnx",)  # `harness eval --model onnx:<file>` (tasks/face_recognition/external_onnx.py)

    def __init__(self, settings: FaceRecognitionSettings, cache_dir: Path | None = None):
        if cache_dir is None and settings.cache_dir:
            cache_dir = Path(settings.cache_dir)
        super().__init__(settings, cache_dir)
        self._provenance: dict[str, Any] = {}
        self._num_classes: int | None = None
        self._train: tuple | None = None
        if settings.val_bins:  # the suite's splits are named after its sets; the first one is "clean"
            self.clean_split = settings.val_bins[0]
            self.occluded_split = f"{settings.val_bins[0]}_masked"
        if settings.ijb_root:
            known = {m.name for m in self.metrics}
            self.metrics = self.metrics + tuple(Metric(far_name(f)) for f in FARS if far_name(f) not in known)

    @classmethod
    def unused_data_keys(cls, settings: FaceRecognitionSettings) -> dict[str, str]:
        if settings.dataset != "synthetic":
            ijb_only = ("ijb_target", "ijb_detector_score")
            why = "no IJB set is read without data.ijb_root"
            return {
                f"data.{k}": why for k in ijb_only if not settings.ijb_root and k in settings.model_fields_set
            }
        why = "the embedded synthetic identities are generated, they read no folder (set data.dataset)"
        keys = ("train_root", "val_pairs", "val_root", "val_bin", "ijb_root")
        unused = {f"data.{k}": why for k in keys if getattr(settings, k) is not None}
        if settings.val_bins:
            unused["data.val_bins"] = why
        return unused

    @property
    def dataset_name(self) -> str:
        s = self.settings
        if s.dataset == "synthetic":
            return "synthetic-faces"
        val = "+".join(s.val_bins) if s.val_bins else Path(s.val_bin or s.val_pairs or "pairs").stem
        ijb = f"+{s.ijb_target.lower()}" if s.ijb_root else ""
        return f"{Path(s.train_root or 'folder').name}+{val}{ijb}"

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.settings.input_size, self.settings.input_size)

    # ------------------------------------------------------------------------------------------- data

    def _synthetic(self) -> tuple[Path, Path, Path]:
        from tasks.face_recognition.synthetic import ensure_synthetic_faces

        s = self.settings
        return ensure_synthetic_faces(
            self.cache_dir / "face_recognition", seed=s.data_seed,
            train_identities=s.synthetic_train_identities,
            train_images=s.synthetic_train_images, val_identities=s.synthetic_val_identities,
            val_images=s.synthetic_val_images, pairs_per_fold=s.synthetic_pairs_per_fold,
        )  # fmt: skip

    def _train_source(self):
        """(images, labels or None, identities) of a folder, label list or RecordIO set, read once."""
        s = self.settings
        if self._train is None:
            if not s.train_root:
                raise DataError(f"data.train_root: required when data.dataset is '{s.dataset}'")
            self._train = train_source(s.dataset, Path(s.train_root))
        return self._train

    def num_classes(self) -> int:
        """Training identities: the margin classifier's size (known before any image is decoded)."""
        if self._num_classes is None:
            s = self.settings
            if s.dataset == "synthetic":
                self._num_classes = s.synthetic_train_identities
            else:
                self._num_classes = self._train_source()[2]
        return self._num_classes

    def _bin_source(self, path: Path) -> tuple[list[FaceImage], np.ndarray, np.ndarray, str, str]:
        images, pairs, same = read_bin(path)
        digest = _digest(path.stat().st_size, str(path.resolve()), same.tobytes())
        return images, pairs, same, path.stem, digest

    def _val_sources(self, seed: int) -> list[tuple[list[FaceImage], np.ndarray, np.ndarray, str, str]]:
        """The clean pair lists: the suite's .bin sets in order, or the one of `_val_source`."""
        s = self.settings
        if not s.val_bins:
            return [self._val_source(seed)]
        folder = Path(s.val_root or s.train_root or "").expanduser()
        if not (s.val_root or s.train_root):
            raise DataError("data.val_bins: set data.val_root, the folder holding <name>.bin")
        missing = [n for n in s.val_bins if not (folder / f"{n}.bin").is_file()]
        if missing:
            raise DataError(f"data.val_bins: {', '.join(f'{n}.bin' for n in missing)} not found in {folder}")
        return [self._bin_source(folder / f"{name}.bin") for name in s.val_bins]

    def _val_source(self, seed: int) -> tuple[list[FaceImage], np.ndarray, np.ndarray, str, str]:
        """(images, pairs, is-same, a name, a digest) of the clean verification pairs."""
        s = self.settings
        if s.dataset == "synthetic":
            _, val_root, pairs_file = self._synthetic()
            images, pairs, same = pairs_over_folder(pairs_file, val_root)
            return images, pairs, same, "synthetic", _digest(pairs_file.read_bytes(), str(pairs_file))
        if s.val_bin:
            return self._bin_source(Path(s.val_bin).expanduser())
        if not (s.val_pairs and s.val_root):
            raise DataError(
                "data.val_pairs and data.val_root (or data.val_bin, or data.val_bins) are required when "
                f"data.dataset is '{s.dataset}'"
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
        if s.dataset == "synthetic":
            train_root = self._synthetic()[0]
            images, labels, identities = train_source("folder", train_root)
        else:
            train_root = Path(s.train_root or "")
            images, labels, identities = self._train_source()
        if identities != self.num_classes():
            raise DataError(
                f"{train_root}: {identities} identities, but the head was sized for {self.num_classes()}"
            )
        occluder = FaceOccluder(occlusion.train, tuple(s.occluders)) if occlusion.train is not None else None
        train = FaceTrainSet(
            images, labels, input_size=s.input_size, flip=s.flip, occluder=occluder, seed=seed
        )

        val_settings, val_kinds = occlusion.val, tuple(s.val_occluders)
        if occlusion.val_severity is not None:
            if val_kinds != ("mask",):
                raise ConfigError(
                    "data.val_occluders: the severity ladder (occlusion.val_severity) sets them"
                )
            val_settings, val_kinds = severity_occluders(occlusion.val_severity)
        splits: dict[str, Any] = {}
        sets, not_computed = [], {}
        for val_images, pairs, same, name, digest in self._val_sources(seed):
            clean = VerificationSet(val_images, pairs, same, input_size=s.input_size, name=name)
            masked_paths, occluded = build_masked_split(
                clean, self.cache_dir / "face_recognition" / "masked_val", settings=val_settings,
                kinds=val_kinds, seed=occlusion.val_seed, source_digest=digest,
            )  # fmt: skip
            clean_name, masked_name = (name, f"{name}_masked") if s.val_bins else (
                self.clean_split, self.occluded_split)  # fmt: skip
            splits[clean_name] = clean
            splits[masked_name] = _masked_pairs(clean, masked_paths, occluded)
            missing = not_computable(same)
            if missing:  # e.g. insightface's sample .bin: matched pairs only, so no TAR@FAR
                not_computed.update({clean_name: missing, masked_name: missing})
            sets.append({
                "split": clean_name, "source": name, "sha256": digest, "pairs": len(pairs),
                "matched_pairs": int(same.sum()), "masked_images": len(masked_paths),
                "masked_folder": str(masked_paths[0].parent) if masked_paths else None,
            })  # fmt: skip
        if s.ijb_root:
            ijb = read_ijb(Path(s.ijb_root).expanduser(), s.ijb_target, input_size=s.input_size)
            splits[ijb.name] = ijb
            sets.append({"split": ijb.name, "source": str(s.ijb_root), "images": len(ijb),
                         "templates": int(len(np.unique(ijb.templates))), "pairs": len(ijb.pairs),
                         "matched_pairs": int(ijb.same.sum())})  # fmt: skip
        first = sets[0]
        self._provenance = {
            "train_root": str(train_root),
            "train_identities": identities,
            "train_images": len(images),
            "val_source": first["source"],
            "val_sha256": first["sha256"],
            "val_pairs": first["pairs"],
            "val_matched_pairs": first["matched_pairs"],
            "masked_val_images": first["masked_images"],
            "masked_val_folder": first["masked_folder"],
            "box_source": "five landmarks"
            if any(i.landmarks is not None for i in images[:50])
            else "pre-aligned",
        }
        if len(sets) > 1:
            self._provenance["val_sets"] = sets
        if not_computed:
            self._provenance["not_computed"] = not_computed
        return train, splits

    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)

    # ------------------------------------------------------------------------------------------ model

    def _pretraining_identities(self, images: int) -> int:
        return max(2, images // self.settings.synthetic_train_images)

    def pretraining_set(self, *, seed: int, images: int) -> FaceTrainSet:
        """`images` clean aligned faces of identities drawn apart from the benchmark's (their own seed
        stream, PRETRAIN_SEED_OFFSET + data_seed), `synthetic_train_images` per identity."""
        s = self.settings
        if s.dataset != "synthetic":
            raise ConfigError(
                "model.pretrained: embedded: only the embedded synthetic identities have a pretraining "
                f"split; for {s.dataset} give a local (ImageNet) checkpoint path"
            )
        from tasks.face_recognition.synthetic import ensure_synthetic_faces

        train_root, _, _ = ensure_synthetic_faces(
            self.cache_dir / "face_recognition", seed=PRETRAIN_SEED_OFFSET + s.data_seed,
            train_identities=self._pretraining_identities(images), train_images=s.synthetic_train_images,
            val_identities=2, val_images=2, pairs_per_fold=1,
        )  # fmt: skip
        faces, labels, identities = train_source("folder", train_root)
        self._pretraining_classes = identities
        return FaceTrainSet(faces, labels, input_size=s.input_size, flip=s.flip, seed=seed)

    def pretraining_head(self, in_channels: int, in_stride: int) -> nn.Module:
        """The margin classifier sized for the pretraining identities (only the backbone is kept)."""
        side = math.ceil(self.settings.input_size / in_stride)
        s = self.settings
        classes = getattr(self, "_pretraining_classes", None)
        if classes is None:
            raise RuntimeError("pretraining_head before pretraining_set: the identity count is unknown")
        return RecognitionHead(in_channels, (side, side), classes, s.embedding_size, s.dropout, s.sample_rate)

    def head(self, in_channels: int, in_stride: int) -> nn.Module:
        side = math.ceil(self.settings.input_size / in_stride)
        s = self.settings
        return RecognitionHead(
            in_channels, (side, side), self.num_classes(), s.embedding_size, s.dropout, s.sample_rate
        )

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        s = self.settings
        labels = batch["label"]
        if "cosine" in outputs:
            cosine = outputs["cosine"]
        else:  # Partial FC: this network's own centres, the batch's positives + random negatives
            weight = outputs["class_weight"]
            count = sample_count(weight.shape[0], s.sample_rate)
            cosine, labels, _ = sampled_cosine(outputs["embedding"], weight, labels, count)
        logits = margin_logits(cosine, labels, kind=s.margin, scale=s.scale, margin=s.margin_m)
        return F.cross_entropy(logits, labels)

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
        """The task's metrics that `dataset` can give: pair lists leave out TAR@FAR without mismatched
        pairs (the record's `data.not_computed` says why), IJB sets give TAR@FAR only."""
        embeddings = collate_embeddings(predictions, len(dataset), self.settings.embedding_size)
        if isinstance(dataset, IJBSet):
            stats = ijb_metrics(embeddings, dataset, detector_score=self.settings.ijb_detector_score)
        else:
            stats = verification_metrics(pair_scores(embeddings, dataset.pairs), dataset.same)
        return {m.name: stats[m.name] for m in self.metrics if m.name in stats}

    def write_predictions(
        self, predictions: list[dict[str, Any]], dataset: VerificationSet, path: Path
    ) -> str:
        from tasks.face_recognition.outputs import write_pair_scores

        if isinstance(dataset, IJBSet):
            from tasks.face_recognition.ijb import write_template_scores

            embeddings = collate_embeddings(predictions, len(dataset), self.settings.embedding_size)
            return write_template_scores(
                embeddings, dataset, path, detector_score=self.settings.ijb_detector_score
            )
        return write_pair_scores(predictions, dataset, self.settings.embedding_size, path)

    def external_model(self, spec: ModelSpec, checkpoint: Path | None) -> ExternalModel:
        if spec.kind != "onnx":
            return super().external_model(spec, checkpoint)
        from tasks.face_recognition.external_onnx import OnnxRecognition

        s = self.settings
        return OnnxRecognition(spec, checkpoint, embedding_size=s.embedding_size, flip_test=s.flip_test)

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
