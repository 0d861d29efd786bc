"""`--model onnx:<file>`: an insightface recognition model (e.g. `w600k_r50.onnx`) on the verification splits.

The model sees what insightface's `ArcFaceONNX.get_feat` feeds it: the 112x112 aligned crop (insightface's
`norm_crop` on the five landmarks, as the harness aligns every face), RGB, NCHW float32, normalised as
(x - 127.5) / 127.5, or left as raw pixels for old mxnet graphs whose first nodes subtract and multiply
themselves (insightface's own rule: a `Sub` / `_minus` and a `Mul` / `_mul` among the first 8 nodes). So the
embeddings equal `get_feat` on the same crops (tested). With `data.flip_test` (the default) the embedding of
the mirrored crop is added, as the harness does for its own networks and arcface_torch's verification does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from harness.core.errors import CheckpointError, ConfigError
from harness.core.external import ExternalModel, ModelSpec, Progress
from tasks.face_recognition.data import ALIGNED_SIZE


def input_normalisation(graph) -> tuple[float, float]:
    """(mean, std) insightface applies for this graph: raw pixels for mxnet graphs that normalise inside."""
    names = [node.name for node in graph.node[:8]]
    subtracts = any(n.startswith(("Sub", "_minus")) for n in names)
    multiplies = any(n.startswith(("Mul", "_mul")) for n in names)
    return (0.0, 1.0) if subtracts and multiplies else (127.5, 127.5)


class OnnxRecognition(ExternalModel):
    """An ONNX face-embedding graph of 112x112 aligned crops, run with onnxruntime.

    Args:
        spec: `onnx:<file>`.
        checkpoint: must be None (the ONNX file holds the weights).
        embedding_size: what the task collates (`data.embedding_size`); the graph must output that many.
        flip_test: add the embedding of the mirrored crop.

    Raises:
        ConfigError: a checkpoint given, an input that is not 3 x 112 x 112, several outputs, another
            embedding size.
        CheckpointError: no such file, or not an ONNX model onnxruntime can run.
    """

    def __init__(self, spec: ModelSpec, checkpoint: Path | None, *, embedding_size: int, flip_test: bool):
        import onnx
        import onnxruntime

        if checkpoint is not None:
            raise ConfigError(f"--checkpoint: {spec.text} holds its own weights; give no checkpoint")
        self.spec, self.path, self.flip_test = spec, Path(spec.target).expanduser(), flip_test
        if not self.path.is_file():
            raise CheckpointError(f"--model {spec.text}: no file at {self.path}")
        try:
            graph = onnx.load(str(self.path)).graph
            self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001  (onnx / onnxruntime raise many types for a bad file)
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(
                f"--model {spec.text}: not an ONNX model onnxruntime can run ({first})"
            ) from None
        self.mean, self.std = input_normalisation(graph)
        model_input = self.session.get_inputs()[0]
        shape = list(model_input.shape)
        if len(shape) != 4 or shape[1] != 3 or shape[2:] != [ALIGNED_SIZE, ALIGNED_SIZE]:
            raise ConfigError(
                f"--model {spec.text}: input {shape}, expected [N, 3, {ALIGNED_SIZE}, {ALIGNED_SIZE}] "
                f"(insightface's {ALIGNED_SIZE}x{ALIGNED_SIZE} aligned crops, the face recognition input)"
            )
        outputs = self.session.get_outputs()
        size = outputs[0].shape[-1] if outputs else None
        if len(outputs) != 1 or (isinstance(size, int) and size != embedding_size):
            raise ConfigError(
                f"--model {spec.text}: outputs {[o.shape for o in outputs]}, expected one embedding of "
                f"data.embedding_size={embedding_size} values (--set data.embedding_size=<its size>)"
            )
        self.input_name = model_input.name

    def weights_file(self) -> Path:
        return self.path

    def describe(self) -> dict[str, Any]:
        import onnxruntime

        return {
            "library": f"onnxruntime {onnxruntime.__version__}",
            "input_size": [ALIGNED_SIZE, ALIGNED_SIZE],
            "input_normalisation": [self.mean, self.std],
            "flip_test": self.flip_test,
        }

    def embed(self, aligned: list[np.ndarray]) -> np.ndarray:
        """(N, D) embeddings of BGR uint8 112x112 aligned crops, as `ArcFaceONNX.get_feat` computes them."""
        rgb = np.stack(aligned).astype(np.float32)[..., ::-1]
        blob = np.ascontiguousarray(((rgb - self.mean) / self.std).transpose(0, 3, 1, 2), dtype=np.float32)
        return self.session.run(None, {self.input_name: blob})[0].astype(np.float32)

    def predict_split(
        self, dataset: Dataset, *, device: torch.device, batch_size: int, progress: Progress
    ) -> list[dict[str, Any]]:
        if device.type == "cuda" and "CUDAExecutionProvider" in self.session.get_providers():
            self.session.set_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])
        predictions = []
        for start in range(0, len(dataset), batch_size):
            indices = range(start, min(start + batch_size, len(dataset)))
            crops = [dataset.aligned(i) for i in indices]
            embeddings = self.embed(crops)
            if self.flip_test:
                embeddings = embeddings + self.embed([crop[:, ::-1] for crop in crops])
            predictions += [{"index": i, "embedding": e} for i, e in zip(indices, embeddings, strict=True)]
            progress(len(crops))
        return predictions
