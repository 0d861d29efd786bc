"""IJB-B/C 1:1 scoring on hand-made meta files, pair lists without mismatched pairs, Partial FC."""

import csv
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.core.errors import DataError
from tasks.face_recognition.ijb import read_ijb, roc_tar_at_far, template_features, template_scores, write_ijb
from tasks.face_recognition.partial_fc import sample_centres, sample_count, sampled_cosine
from tasks.face_recognition.task import FaceRecognitionSettings, FaceRecognitionTask
from tasks.face_recognition.verification import not_computable, verification_metrics

FIVE = np.array([[3.0, 4.0], [8.0, 4.0], [5.5, 6.0], [3.5, 8.5], [7.5, 8.5]])


def test_template_features_average_media_then_sum_and_normalise():
    features = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 1.0], [3.0, 4.0]])
    ids, feats = template_features(features, np.array([1, 1, 1, 2]), np.array([10, 10, 11, 20]))
    # Template 1: media 10 -> mean((2,0), (0,2)) = (1,1); media 11 -> (0,1); sum (1,2).
    assert ids.tolist() == [1, 2]
    np.testing.assert_allclose(feats, [[1 / math.sqrt(5), 2 / math.sqrt(5)], [0.6, 0.8]])
    order = [3, 2, 0, 1]  # the meta files need not be grouped by template or media
    ids2, feats2 = template_features(
        features[order], np.array([1, 1, 1, 2])[order], np.array([10, 10, 11, 20])[order]
    )
    assert ids2.tolist() == [1, 2]
    np.testing.assert_allclose(feats2, feats)


def test_roc_tar_at_far_reads_the_nearest_point_of_the_reduced_roc():
    # 4 genuine, 10 impostor pairs. Thresholds from the top give (FP, TP) = (0,1) (1,1) (1,2) (1,3) (2,3)
    # (2,4) (3,4) ... (10,4); collinear points dropped leave (0,1) (1,1) (1,3) (2,3) (2,4) (10,4), so with
    # (0,0) in front: FAR 0 0 .1 .1 .2 .2 1 and TAR 0 .25 .25 .75 .75 1 1.
    genuine = [0.9, 0.8, 0.5, 0.3]
    impostor = [0.85, 0.4, 0.2, 0.1, 0.05, 0.0, -0.1, -0.2, -0.3, -0.4]
    scores = np.array(genuine + impostor)
    same = np.array([True] * 4 + [False] * 10)
    result = roc_tar_at_far(scores, same)
    assert result == {
        "tar_far_1e-6": 0.25, "tar_far_1e-5": 0.25, "tar_far_1e-4": 0.25, "tar_far_1e-3": 0.25,
        "tar_far_1e-2": 0.25,  # FAR 0 is nearer to 0.01 than FAR 0.1
        "tar_far_1e-1": 0.75,  # FAR 0.1 exactly: the higher of its two points
    }  # fmt: skip
    with pytest.raises(ValueError, match="needs both genuine and impostor"):
        roc_tar_at_far(scores[:4], same[:4])


def _ijb_root(tmp_path):
    names = [f"{i}.png" for i in range(9)]
    images = {n: np.full((12, 12, 3), 40 + 20 * i, np.uint8) for i, n in enumerate(names)}
    # Template 1 = images 0, 1 (media 1) and 2 (media 2); templates 2..7 one image each (images 3..8).
    rows = [(names[0], 1, 1), (names[1], 1, 1), (names[2], 1, 2)]
    rows += [(names[3 + k], 2 + k, 3 + k) for k in range(6)]
    pairs = [(1, 2, 1), (1, 3, 1), (2, 3, 0), (2, 4, 0), (3, 4, 0), (1, 5, 0), (3, 6, 0), (4, 7, 0)]
    scores = {n: 1.0 for n in names} | {names[1]: 3.0}
    write_ijb(tmp_path / "IJBC", "IJBC", images, rows, pairs, dict.fromkeys(names, FIVE), scores)
    return tmp_path / "IJBC"


def test_ijb_meta_files_scored_by_hand(tmp_path):
    root = _ijb_root(tmp_path)
    settings = FaceRecognitionSettings(dataset="folder", input_size=28, embedding_size=2, ijb_root=str(root))
    task = FaceRecognitionTask(settings)
    ijb = read_ijb(root, "IJBC", input_size=28)
    assert len(ijb) == 9 and ijb.name == "ijbc" and ijb.faceness.tolist() == [1, 3, 1, 1, 1, 1, 1, 1, 1]
    assert tuple(ijb[0]["image"].shape) == (3, 28, 28)  # aligned from the five landmarks
    # Image embeddings (what predict returns: image + mirror image). Weighted by faceness, media 1 is
    # mean((1,0), 3*(0,1)) = (.5,1.5), media 2 is (1,1): template 1 = (1.5, 2.5) ~ (3,5)/sqrt(34).
    embeddings = [(1, 0), (0, 1), (1, 1), (1, 0), (0, 1), (-1, 0), (1, 1), (0, -1), (0, -1)]
    predictions = [{"index": i, "embedding": np.array(e, np.float32)} for i, e in enumerate(embeddings)]
    # Pair scores: (1,2) 3/sqrt34 = .514 G, (1,3) 5/sqrt34 = .857 G, (2,3) 0, (2,4) -1, (3,4) 0,
    # (1,5) 8/sqrt68 = .970, (3,6) -1, (4,7) 0. From the top: I .970, G .857, G .514, I 0 (x3), I -1 (x2),
    # so (FP,TP) = (1,0) (1,1) (1,2) (4,2) (6,2); (1,1) is dropped (zero second difference), and with
    # (0,0) in front FAR = 0 1/6 1/6 4/6 1, TAR = 0 0 1 1 1.
    path = tmp_path / "scores.csv"
    assert task.write_predictions(predictions, ijb, path) == "template_scores_csv"
    rows = list(csv.DictReader(path.open()))
    expected = [3 / math.sqrt(34), 5 / math.sqrt(34), 0.0, -1.0, 0.0, 8 / math.sqrt(68), -1.0, 0.0]
    np.testing.assert_allclose([float(r["score"]) for r in rows], expected, atol=1e-7)
    assert [(r["template1"], r["template2"], r["same"]) for r in rows][:2] == [
        ("1", "2", "1"),
        ("1", "3", "1"),
    ]
    sliced = template_scores(np.array(embeddings, np.float32), ijb, chunk=3)  # 8 pairs in slices of 3
    np.testing.assert_allclose(sliced, expected, atol=1e-12)
    metrics = task.evaluate(predictions, ijb)
    assert metrics == {
        "tar_far_1e-6": 0.0, "tar_far_1e-5": 0.0, "tar_far_1e-4": 0.0, "tar_far_1e-3": 0.0,
        "tar_far_1e-2": 0.0,  # FAR 0 (distance .01) is nearest: TAR 0
        "tar_far_1e-1": 1.0,  # FAR 1/6 (distance .067) beats FAR 0 (.1): the higher of its points, 1
    }  # fmt: skip
    # Without the faceness weights template 1 is (1.5, 1.5): the two genuine scores tie at .707.
    plain = FaceRecognitionTask(settings.model_copy(update={"ijb_detector_score": False}))
    plain.write_predictions(predictions, ijb, path)
    assert [round(float(r["score"]), 6) for r in csv.DictReader(path.open())][:2] == [0.707107, 0.707107]


def test_ijb_meta_errors_name_file_and_entry(tmp_path):
    root = _ijb_root(tmp_path)
    points = root / "meta" / "ijbc_name_5pts_score.txt"
    lines = points.read_text().splitlines()
    points.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    with pytest.raises(
        DataError, match=r"ijbc_name_5pts_score.txt entry 1: image '1.png', but .* has '0.png'"
    ):
        read_ijb(root, "IJBC", input_size=28)
    points.write_text("\n".join(lines) + "\n")
    pair_file = root / "meta" / "ijbc_template_pair_label.txt"
    pair_file.write_text("1 99 0\n")
    with pytest.raises(DataError, match=r"ijbc_template_pair_label.txt: template 99 has no image"):
        read_ijb(root, "IJBC", input_size=28)
    pair_file.write_text("1 2\n")
    with pytest.raises(DataError, match=r"line 1: expected '<template 1> <template 2> <label>' \(3 fields\)"):
        read_ijb(root, "IJBC", input_size=28)


def test_pairs_without_mismatches_score_accuracy_and_say_what_is_missing():
    scores, same = np.array([0.9, 0.7, 0.8]), np.array([True, True, True])
    metrics = verification_metrics(scores, same)  # three pairs: three folds of one pair, no crash
    # Each fold's threshold sits just below the lowest training score: held-out .9 and .8 pass, .7 (below
    # the .8 of its training folds) fails, so accuracy 2/3, std sqrt(2/9).
    assert metrics["accuracy"] == pytest.approx(2 / 3) and metrics["accuracy_std"] == pytest.approx(
        math.sqrt(2 / 9)
    )
    assert "tar_far_1e-3" not in metrics and "tar_far_1e-4" not in metrics
    reasons = not_computable(same)
    assert set(reasons) == {"tar_far_1e-3", "tar_far_1e-4"}
    assert reasons["tar_far_1e-3"] == "no mismatched pairs among 3: the false accept rate is undefined"
    assert not_computable(np.array([True, False])) == {}


def test_sampled_centres_keep_every_positive_and_give_the_full_logits_on_kept_columns():
    torch.manual_seed(0)
    labels = torch.tensor([3, 17, 3, 8])
    index, remapped = sample_centres(labels, 20, 6, torch.Generator().manual_seed(1))
    assert len(index) == 6 and torch.equal(index, index.sort().values) and len(set(index.tolist())) == 6
    assert {3, 8, 17} <= set(index.tolist()) and torch.equal(index[remapped], labels)
    other, _ = sample_centres(labels, 20, 6, torch.Generator().manual_seed(2))
    assert not torch.equal(index, other)  # the negatives are drawn, not fixed
    # More distinct identities than the sample: exactly the positives.
    assert sample_centres(labels, 20, 2)[0].tolist() == [3, 8, 17]

    embedding, weight = torch.randn(4, 16), torch.randn(20, 16)
    cosine, target, kept = sampled_cosine(embedding, weight, labels, 6, torch.Generator().manual_seed(1))
    full = F.linear(F.normalize(embedding), F.normalize(weight))
    torch.testing.assert_close(cosine, full[:, kept])
    assert torch.equal(kept[target], labels)
    assert sample_count(100_000, 0.1) == 10_000 and sample_count(10, 0.01) == 1


def test_partial_fc_loss_keeping_every_centre_equals_the_full_loss_and_trains_sampled_rows_only():
    torch.manual_seed(0)

    def task(rate):
        settings = FaceRecognitionSettings(synthetic_train_identities=10, input_size=28, embedding_size=8,
                                           sample_rate=rate)  # fmt: skip
        return FaceRecognitionTask(settings)

    head_full = task(1.0).head(32, 4)
    head_sampled = task(0.95).head(32, 4)  # ceil(9.5) = 10: every centre kept, in sorted order
    head_sampled.load_state_dict(head_full.state_dict())
    x, batch = torch.randn(4, 32, 7, 7), {"label": torch.tensor([1, 4, 4, 9])}
    full = task(1.0).loss(head_full.train()(x), batch)
    out = head_sampled.train()(x)
    assert set(out) == {"embedding", "class_weight"} and out["class_weight"] is head_sampled.class_weight
    torch.testing.assert_close(task(0.95).loss(out, batch), full)

    head = task(0.3).head(32, 4)  # 3 centres per batch: the 3 positives here
    task(0.3).loss(head.train()(x), batch).backward()
    rows = head.class_weight.grad.abs().sum(1).nonzero().flatten().tolist()
    assert rows == [1, 4, 9]


def test_new_data_keys_are_validated():
    with pytest.raises(ValueError, match="must be in \\(0, 1\\]"):
        FaceRecognitionSettings(sample_rate=0.0)
    with pytest.raises(ValueError, match="expected set names such as lfw"):
        FaceRecognitionSettings(val_bins=["lfw.bin"])
    with pytest.raises(ValueError, match="data.val_bins replaces data.val_bin"):
        FaceRecognitionSettings(val_bins=["lfw"], val_bin="x.bin")
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        FaceRecognitionSettings(val_bin_folder="x")
    with pytest.raises(ValueError, match="Input should be 'IJBB' or 'IJBC'"):
        FaceRecognitionSettings(ijb_target="IJBA")
    unused = FaceRecognitionTask.unused_data_keys(FaceRecognitionSettings(dataset="rec", ijb_target="IJBB"))
    assert unused == {"data.ijb_target": "no IJB set is read without data.ijb_root"}
    unused = FaceRecognitionTask.unused_data_keys(FaceRecognitionSettings(val_bins=["lfw"]))
    assert set(unused) == {"data.val_bins"}
