import numpy as np
import pytest
import torch

from tasks.common import heatmap
from tasks.common.heatmap_model import HeatmapHead
from tasks.pose.keypoints import COCO_FLIP_PAIRS


def test_heatmap_round_trip_within_half_a_pixel():
    rng = np.random.default_rng(0)
    h, w = 32, 24
    points = np.stack([rng.uniform(1, w - 2, 17), rng.uniform(1, h - 2, 17)], axis=1)
    heatmaps, weights = heatmap.encode_heatmaps(points, np.ones(17, bool), (h, w), sigma=2.0)
    coords, maxvals = heatmap.decode_heatmaps(torch.from_numpy(heatmaps)[None])
    error = np.abs(coords[0].numpy() - points)
    assert error.max() <= 0.5
    assert weights.tolist() == [1.0] * 17
    assert torch.all(maxvals > 0.85)


def test_quarter_offset_improves_on_plain_argmax():
    points = np.array([[10.3, 7.8], [5.7, 20.2]])
    heatmaps, _ = heatmap.encode_heatmaps(points, np.ones(2, bool), (32, 24), sigma=2.0)
    coords, _ = heatmap.decode_heatmaps(torch.from_numpy(heatmaps)[None])
    np.testing.assert_allclose(coords[0].numpy(), [[10.25, 7.75], [5.75, 20.25]])


def test_unlabelled_and_outside_keypoints_get_zero_weight():
    points = np.array([[3.0, 3.0], [3.0, 3.0], [-5.0, 3.0]])
    heatmaps, weights = heatmap.encode_heatmaps(points, np.array([True, False, True]), (8, 8), sigma=1.0)
    assert weights.tolist() == [1.0, 0.0, 0.0]
    assert heatmaps[1].max() == 0 and heatmaps[2].max() == 0
    assert heatmaps[0].max() == 1.0


def test_crop_affine_maps_box_centre_to_crop_centre_and_inverts():
    center, size = heatmap.box_to_center_size([40, 20, 30, 90], aspect_ratio=0.75)
    assert size[0] / size[1] == 0.75 and size[1] == 90 * 1.25
    matrix = heatmap.crop_affine(center, size, 17.0, (128, 96))
    np.testing.assert_allclose(heatmap.apply_affine(center[None], matrix)[0], [47.5, 63.5])
    points = np.array([[41.0, 22.0], [63.5, 100.25]])
    back = heatmap.apply_affine(heatmap.apply_affine(points, matrix), heatmap.invert_affine(matrix))
    np.testing.assert_allclose(back, points, atol=1e-9)


def test_flip_in_the_affine_mirrors_the_crop():
    center, size = np.array([50.0, 60.0]), np.array([48.0, 64.0])
    plain = heatmap.crop_affine(center, size, 0.0, (64, 48))
    flipped = heatmap.crop_affine(center, size, 0.0, (64, 48), flip=True)
    p = np.array([[37.0, 51.0]])
    x_plain = heatmap.apply_affine(p, plain)[0]
    x_flip = heatmap.apply_affine(p, flipped)[0]
    np.testing.assert_allclose(x_flip, [47 - x_plain[0], x_plain[1]])


def test_heatmap_flip_is_exact_with_pixel_centre_convention():
    """Encoding mirrored input points equals mirroring (and channel-swapping) the heatmaps."""
    rng = np.random.default_rng(1)
    in_w, stride = 48, 4
    points_in = np.stack([rng.uniform(0, in_w - 1, 17), rng.uniform(0, 63, 17)], axis=1)
    mirrored = points_in.copy()
    mirrored[:, 0] = in_w - 1 - mirrored[:, 0]
    order = np.arange(17)
    for a, b in COCO_FLIP_PAIRS:
        order[a], order[b] = b, a
    size = (16, 12)
    direct, _ = heatmap.encode_heatmaps(
        heatmap.input_to_heatmap(points_in, stride), np.ones(17, bool), size, 2.0
    )
    of_mirror, _ = heatmap.encode_heatmaps(
        heatmap.input_to_heatmap(mirrored[order], stride), np.ones(17, bool), size, 2.0
    )
    back = heatmap.flip_heatmaps(torch.from_numpy(of_mirror)[None], COCO_FLIP_PAIRS)[0].numpy()
    np.testing.assert_allclose(back, direct, atol=1e-6)


def test_the_two_decoders_are_explicit_options_and_dark_is_the_finer_one():
    """A Gaussian peak at a sub-pixel spot: argmax + 1/4 lands within a quarter pixel, DARK (no blur on an
    exact Gaussian) within a hundredth; an unknown name is refused."""
    truth = np.array([[10.3, 7.8], [4.62, 12.15]])
    maps, _ = heatmap.encode_heatmaps(truth, np.ones(2, bool), (20, 16), sigma=2.0)
    maps = torch.from_numpy(maps)[None]
    quarter, _ = heatmap.decode_heatmaps(maps, "argmax_quarter")
    dark, _ = heatmap.decode_heatmaps(maps, "dark")
    exact, _ = heatmap.decode_dark(maps, blur_sigma=0)
    np.testing.assert_allclose(quarter[0].numpy(), [[10.25, 7.75], [4.75, 12.25]])
    assert np.abs(exact[0].numpy() - truth).max() < 0.01
    assert np.abs(dark[0].numpy() - truth).max() < np.abs(quarter[0].numpy() - truth).max()
    with pytest.raises(ValueError, match="unknown heatmap decoder 'soft'"):
        heatmap.decode_heatmaps(maps, "soft")


def test_flip_order_swaps_each_pair_once_and_is_its_own_inverse():
    order = heatmap.flip_order(5, [(1, 2), (3, 4)])
    assert order == [0, 2, 1, 4, 3]
    assert [order[i] for i in order] == list(range(5))


def test_a_face_checkpoint_from_before_the_shared_head_still_loads():
    """The landmark head's layers were called `body`; the shared head calls them `upsample`."""
    head = HeatmapHead(32, 8, 29, deconv_channels=16, refine=True)
    legacy = {k.replace("upsample.", "body."): v + 1 for k, v in head.state_dict().items()}
    fresh = HeatmapHead(32, 8, 29, deconv_channels=16, refine=True)
    fresh.load_state_dict(legacy)  # strict: every key matched
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, legacy[key.replace("upsample.", "body.")])


def test_head_reaches_stride_4_from_any_stride_and_refine_adds_hrnetv2_layers():
    for stride, deconvs in ((4, 0), (8, 1), (32, 3)):
        head = HeatmapHead(24, stride, 17, deconv_channels=16)
        x = torch.zeros(2, 24, 64 // stride, 96 // stride)
        assert head(x).shape == (2, 17, 16, 24)
        assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in head.modules()) == deconvs
    refined = HeatmapHead(24, 4, 29, refine=True)
    assert [type(m).__name__ for m in refined.upsample] == ["Conv2d", "BatchNorm2d", "ReLU"]


def test_no_task_imports_another_task():
    """Tasks share code through tasks.common only: pose and face alignment are layers on it."""
    import ast
    from pathlib import Path

    tasks = Path(__file__).resolve().parents[3] / "tasks"
    names = sorted(p.name for p in tasks.iterdir() if (p / "__init__.py").is_file() and p.name != "common")
    offenders = []
    for name in names:
        for path in (tasks / name).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    modules = [node.module]
                offenders += [
                    f"{path.relative_to(tasks)}: {m}"
                    for m in modules
                    if m.startswith("tasks.") and m.split(".")[1] not in (name, "common")
                ]
    assert {"pose", "face_alignment", "face_recognition"} <= set(names)
    assert offenders == []


def test_tasks_draw_ground_truth_without_its_unlabelled_points():
    """`Task.draw_prediction` (harness predict, the report's qualitative grid): an annotation's v = 0 points
    are not drawn; a prediction's points all are."""
    from tasks.face_alignment.landmarks import COFW
    from tasks.face_alignment.outputs import draw_landmarks
    from tasks.pose.inference import draw_pose
    from tasks.pose.keypoints import COCO_LAYOUT

    for draw, layout, count in ((draw_pose, COCO_LAYOUT, 17), (draw_landmarks, COFW, 29)):
        points = [[10.0 + 7 * (k % 6), 10.0 + 7 * (k // 6), 2.0] for k in range(count)]
        points[0] = [150.0, 150.0, 0.0]  # far from the others: only its own marker can reach it
        flat = [v for p in points for v in p]
        gt = draw(np.zeros((200, 200, 3), np.uint8), {"keypoints": flat, "ground_truth": True}, layout)
        pred = draw(np.zeros((200, 200, 3), np.uint8), {"keypoints": flat}, layout)
        assert gt[150, 150].sum() == 0 and pred[150, 150].sum() > 0
        assert gt[10, 10 + 7].sum() > 0  # a labelled point is drawn
