import numpy as np
import torch

from tasks.pose import codec
from tasks.pose.keypoints import COCO_FLIP_PAIRS


def test_heatmap_round_trip_within_half_a_pixel():
    rng = np.random.default_rng(0)
    h, w = 32, 24
    points = np.stack([rng.uniform(1, w - 2, 17), rng.uniform(1, h - 2, 17)], axis=1)
    heatmaps, weights = codec.encode_heatmaps(points, np.ones(17, bool), (h, w), sigma=2.0)
    coords, maxvals = codec.decode_heatmaps(torch.from_numpy(heatmaps)[None])
    error = np.abs(coords[0].numpy() - points)
    assert error.max() <= 0.5
    assert weights.tolist() == [1.0] * 17
    assert torch.all(maxvals > 0.85)


def test_quarter_offset_improves_on_plain_argmax():
    points = np.array([[10.3, 7.8], [5.7, 20.2]])
    heatmaps, _ = codec.encode_heatmaps(points, np.ones(2, bool), (32, 24), sigma=2.0)
    coords, _ = codec.decode_heatmaps(torch.from_numpy(heatmaps)[None])
    np.testing.assert_allclose(coords[0].numpy(), [[10.25, 7.75], [5.75, 20.25]])


def test_unlabelled_and_outside_keypoints_get_zero_weight():
    points = np.array([[3.0, 3.0], [3.0, 3.0], [-5.0, 3.0]])
    heatmaps, weights = codec.encode_heatmaps(points, np.array([True, False, True]), (8, 8), sigma=1.0)
    assert weights.tolist() == [1.0, 0.0, 0.0]
    assert heatmaps[1].max() == 0 and heatmaps[2].max() == 0
    assert heatmaps[0].max() == 1.0


def test_crop_affine_maps_box_centre_to_crop_centre_and_inverts():
    center, size = codec.box_to_center_scale([40, 20, 30, 90], aspect_ratio=0.75)
    assert size[0] / size[1] == 0.75 and size[1] == 90 * 1.25
    matrix = codec.crop_affine(center, size, 17.0, (128, 96))
    np.testing.assert_allclose(codec.apply_affine(center[None], matrix)[0], [47.5, 63.5])
    points = np.array([[41.0, 22.0], [63.5, 100.25]])
    back = codec.apply_affine(codec.apply_affine(points, matrix), codec.invert_affine(matrix))
    np.testing.assert_allclose(back, points, atol=1e-9)


def test_flip_in_the_affine_mirrors_the_crop():
    center, size = np.array([50.0, 60.0]), np.array([48.0, 64.0])
    plain = codec.crop_affine(center, size, 0.0, (64, 48))
    flipped = codec.crop_affine(center, size, 0.0, (64, 48), flip=True)
    p = np.array([[37.0, 51.0]])
    x_plain = codec.apply_affine(p, plain)[0]
    x_flip = codec.apply_affine(p, flipped)[0]
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
    direct, _ = codec.encode_heatmaps(codec.input_to_heatmap(points_in, stride), np.ones(17, bool), size, 2.0)
    of_mirror, _ = codec.encode_heatmaps(
        codec.input_to_heatmap(mirrored[order], stride), np.ones(17, bool), size, 2.0
    )
    back = codec.flip_heatmaps(torch.from_numpy(of_mirror)[None], COCO_FLIP_PAIRS)[0].numpy()
    np.testing.assert_allclose(back, direct, atol=1e-6)
