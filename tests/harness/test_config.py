from pathlib import Path

import pytest

from harness.core.config import CONFIG_ROOT, load_config, load_tree
from harness.core.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_inheritance_merges_sections(tmp_path):
    write(tmp_path / "base.yaml", "seed: 3\ntrain:\n  batch_size: 8\n  epochs: 5\n")
    child = write(tmp_path / "sub/child.yaml", "_base_: ../base.yaml\ntrain:\n  epochs: 2\n")
    cfg = load_config(child)
    assert (cfg.seed, cfg.train.batch_size, cfg.train.epochs) == (3, 8, 2)


def test_overrides_parse_yaml_values():
    cfg = load_config(
        CONFIG_ROOT / "pose/default.yaml",
        ["train.batch_size=7", "optim.lr=1e-4", "optim.milestones=[3, 4]", "data.flip=false"],
    )
    assert cfg.train.batch_size == 7
    assert cfg.optim.lr == pytest.approx(1e-4)
    assert cfg.optim.milestones == [3, 4]
    assert cfg.data["flip"] is False


def test_task_section_gets_defaults_filled():
    cfg = load_config(CONFIG_ROOT / "pose/default.yaml")
    assert cfg.data["sigma"] == 2.0 and "flip_test" in cfg.data
    assert cfg.method_args["dslope"]["enet_weight"] == pytest.approx(1e-3)
    assert cfg.method_args["dslope"]["gnet_weight"] == pytest.approx(1e-5)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("train.bacth_size=3", "unknown config key 'train.bacth_size'"),
        ("data.sigmaa=3", "unknown config key 'data.sigmaa'"),
        ("method_args.dslope.enet_wieght=1", "unknown config key 'method_args.dslope.enet_wieght'"),
        ("train.batch_size=many", "config key 'train.batch_size'"),
        ("data.input_size=big", "config key 'data.input_size'"),
        ("optim.name=lion", "config key 'optim.name'"),
    ],
)
def test_bad_keys_and_types_name_the_key(override, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(CONFIG_ROOT / "pose/default.yaml", [override])
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_key_in_file_lists_valid_keys(tmp_path):
    path = write(tmp_path / "c.yaml", "train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'train.epoch'.*valid keys here: .*epochs"):
        load_config(path)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path / "broken.yaml", "seed: 1\ntrain:\n  epochs: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken.yaml line \d+"):
        load_tree(path)


def test_set_without_equals_is_rejected():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["train.epochs"])


def test_unknown_task_and_method_are_rejected():
    with pytest.raises(Exception, match="unknown task 'posee'.*did you mean 'pose'"):
        load_config(None, ["task=posee"])
    with pytest.raises(Exception, match="unknown method 'dslop'"):
        load_config(None, ["method=dslop"])


def test_hash_is_stable_and_tracks_numbers_not_paths():
    base = load_config(CONFIG_ROOT / "pose/default.yaml")
    same = load_config(CONFIG_ROOT / "pose/default.yaml")
    moved = load_config(CONFIG_ROOT / "pose/default.yaml", ["output.results_dir=/elsewhere"])
    changed = load_config(CONFIG_ROOT / "pose/default.yaml", ["optim.lr=0.5"])
    assert base.hash() == same.hash() == moved.hash()
    assert base.hash() != changed.hash()


def test_mapping_override_merges_into_the_section():
    cfg = load_config(CONFIG_ROOT / "pose/default.yaml", ['data={"sigma": 3.0, "flip": false}'])
    assert cfg.data["sigma"] == 3.0 and cfg.data["flip"] is False
    assert cfg.data["input_size"] == [128, 96]  # untouched keys survive


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for p in CONFIG_ROOT.rglob("*.yaml")
        if "_base_" not in p.parts and "sweeps" not in p.parts and p.name != "report.yaml"  # report policy
    ),
)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.task in {"pose", "face_alignment", "face_recognition"}
