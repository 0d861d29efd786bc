"""`harness predict`: run a trained network on plain images and draw what it sees.

Person (or face) boxes come from a COCO detections json (`image_id` or `file_name`, `bbox` [x, y, w, h],
`score`), or each image is one box. The task builds the crops (`Task.inference_dataset`), predicts with
the same test-time steps as evaluation (`Task.predict`) and draws each prediction (`Task.draw_prediction`);
this module only finds the images, matches boxes to them and writes `<out>/<image stem>.png` plus
`<out>/predictions.json` with the coordinates in source-image pixels.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import torch
from rich.console import Console
from torch.utils.data import DataLoader

from harness.core.batches import to_device
from harness.core.errors import ConfigError, DataError
from harness.core.io import atomic_write_json, ensure_writable, read_image
from harness.evaluate.trained_run import load_trained, run_config

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class PredictSummary:
    out: Path
    json_path: Path
    network: str
    images: int
    predictions: int


def find_images(path: Path) -> list[Path]:
    """The image, or the images of a folder (sorted by name).

    Raises:
        DataError: nothing there, or a folder without images.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"harness predict: no image or folder at {path}")
    found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not found:
        raise DataError(f"harness predict: {path} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    return found


def read_boxes(path: Path, images: list[Path], score_threshold: float) -> dict[Path, list[list[float]]]:
    """Detections per image: [x, y, w, h, score] lists, matched by `file_name` or by `image_id` = the file's
    numeric stem (COCO's `000000397133.jpg` is image 397133). Detections of no given image are ignored.

    Raises:
        DataError: not a json list of detections, or a detection without bbox/score.
    """
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"--boxes: {path} is not a readable json file ({err})") from None
    if not isinstance(entries, list):
        raise DataError(f"--boxes: {path} must hold a json list of detections (COCO results format)")
    by_name = {p.name: p for p in images}
    by_id = {int(p.stem): p for p in images if p.stem.isdigit()}
    boxes: dict[Path, list[list[float]]] = defaultdict(list)
    for index, det in enumerate(entries):
        try:
            box, score = [float(v) for v in det["bbox"]], float(det.get("score", 1.0))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"--boxes: {path} detection {index} lacks a numeric bbox [x, y, w, h]") from None
        if len(box) != 4:
            raise DataError(
                f"--boxes: {path} detection {index} has bbox {det['bbox']}, expected [x, y, w, h]"
            )
        image = by_name.get(str(det.get("file_name", ""))) or by_id.get(det.get("image_id"))
        if image is None or det.get("category_id", 1) != 1 or score < score_threshold:
            continue
        if box[2] > 0 and box[3] > 0:
            boxes[image].append([*box, score])
    return dict(boxes)


@torch.no_grad()
def predict_images(
    run_dir: Path,
    images: Path,
    out: Path,
    *,
    boxes: Path | None = None,
    network: str | None = None,
    score_threshold: float = 0.0,
    device: str = "cpu",
    console: Console | None = None,
) -> PredictSummary:
    """Predict every box of every image with the run's network; draw and write the results to `out`.

    Raises:
        ConfigError, CheckpointError, DataError: not a run dir, a bad checkpoint, no images, bad boxes.
    """
    cfg = run_config(run_dir, "predict")
    paths = find_images(images)
    ensure_writable(out, "--out")
    torch_device = torch.device(device)
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here")
    given = read_boxes(boxes, paths, score_threshold) if boxes is not None else {}
    trained = load_trained(run_dir, cfg, "predict")
    name, model = trained.network(network)
    model.to(torch_device).eval()
    task = trained.task
    dataset = task.inference_dataset(paths, given)
    loader = DataLoader(dataset, batch_size=cfg.train.eval_batch_size, shuffle=False, num_workers=0)
    per_image: dict[int, list[dict]] = defaultdict(list)
    for batch in loader:
        for prediction in task.predict(model, to_device(batch, torch_device)):
            per_image[int(prediction["image_id"])].append(prediction)
    out = Path(out)
    listing = []
    for index, path in enumerate(paths):
        predictions = per_image.get(index, [])
        canvas = read_image(path)
        for prediction in predictions:
            task.draw_prediction(canvas, prediction)
        target = out / f"{path.stem}.png"
        if not cv2.imwrite(str(target), canvas):
            raise ConfigError(f"--out: cannot write {target}")
        listing.append(
            {
                "image": str(path),
                "drawn": target.name,
                "predictions": [
                    {k: v for k, v in p.items() if k not in ("image_id", "ann_id")} for p in predictions
                ],
            }
        )
    json_path = out / "predictions.json"
    atomic_write_json(
        json_path,
        {
            "run_id": Path(run_dir).name,
            "task": cfg.task,
            "network": name,
            "checkpoint_sha256": trained.checkpoint_sha256,
            "box_source": f"detections:{Path(boxes).name}" if boxes is not None else "whole image",
            "coordinates": "source-image pixels; keypoints are [x, y, score] per point",
            "images": listing,
        },
    )
    return PredictSummary(out, json_path, name, len(paths), sum(len(v) for v in per_image.values()))
