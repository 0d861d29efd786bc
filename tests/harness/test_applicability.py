"""Config keys that cannot apply are errors naming the key, never silently dropped."""

import pytest

from harness.core.config import CONFIG_ROOT, load_config
from harness.core.errors import ConfigError

FACES = ["task=face_recognition", "model.backbone=resnet18"]


@pytest.mark.parametrize(
    ("config", "overrides", "key"),
    [
        ("pose", ["data.root=/some/dir"], "data.root"),
        ("pose", ["data.val_split=val2017"], "data.val_split"),
        ("face_alignment", ["data.root=/some/dir"], "data.root"),
        ("face_recognition", ["data.train_root=/some/dir"], "data.train_root"),
        ("face_recognition", ["occlusion.size_range=[0.1,0.2]"], "occlusion.size_range"),
        ("face_recognition", ["occlusion.max_rotation=10"], "occlusion.max_rotation"),
        ("face_recognition", ["occlusion.max_patches=20"], "occlusion.max_patches"),
        ("pose", ["occlusion.val_severity=5"], "occlusion.val_severity"),
    ],
)
def test_a_key_that_cannot_apply_is_named(config, overrides, key):
    with pytest.raises(ConfigError, match=rf"'{key}'"):
        load_config(CONFIG_ROOT / config / "default.yaml", overrides)


def test_keys_that_apply_still_load():
    assert (
        load_config(CONFIG_ROOT / "pose/default.yaml", ["data.dataset=coco", "data.root=/x"]).data["root"]
        == "/x"
    )
    faces = load_config(CONFIG_ROOT / "face_recognition/default.yaml", ["occlusion.val_severity=3"])
    assert faces.occlusion.val_severity == 3
    assert load_config(CONFIG_ROOT / "pose/default.yaml", ["occlusion.size_range=[0.1,0.2]"])


def test_an_unset_severity_leaves_configs_and_hashes_as_before():
    plain = load_config(CONFIG_ROOT / "pose/default.yaml")
    assert "val_severity" not in plain.to_dict()["occlusion"]
    level = load_config(CONFIG_ROOT / "pose/default.yaml", ["occlusion.val_severity=2"])
    assert level.to_dict()["occlusion"]["val_severity"] == 2 and level.hash() != plain.hash()
