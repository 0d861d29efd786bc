"""The val-split bootstrap: exact predictions give AP 1 in every resample; a miss moves it."""

import json

from benchmarks.val_sampling_noise import bootstrap_ap

KEYPOINTS = [f"k{i}" for i in range(17)]


def _person(image_id, ann_id, dx):
    points = [[20 + 5 * i + dx, 30 + 4 * i] for i in range(17)]
    flat = [v for x, y in points for v in (x, y, 2)]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "keypoints": flat, "num_keypoints": 17,
            "bbox": [10 + dx, 20, 100, 90], "area": 9000.0, "iscrowd": 0}  # fmt: skip


def test_bootstrap_of_exact_predictions_is_always_one_and_a_miss_lowers_it(tmp_path):
    gt = {"images": [{"id": i} for i in (1, 2, 3)], "categories": [{"id": 1, "keypoints": KEYPOINTS}],
          "annotations": [_person(i, i, 10 * i) for i in (1, 2, 3)]}  # fmt: skip
    exact = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
             for a in gt["annotations"]]  # fmt: skip
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "exact.json").write_text(json.dumps(exact))
    full, aps = bootstrap_ap(tmp_path / "gt.json", tmp_path / "exact.json", rounds=5)
    assert full == 1.0 and aps == [1.0] * 5
    wrong = [dict(p, keypoints=[v + 60 if i % 3 < 2 else v for i, v in enumerate(p["keypoints"])])
             if p["image_id"] == 2 else p for p in exact]  # fmt: skip
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    full, aps = bootstrap_ap(tmp_path / "gt.json", tmp_path / "wrong.json", rounds=20)
    assert full < 1.0 and min(aps) < max(aps)  # resamples with and without image 2 differ
