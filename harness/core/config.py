"""Typed run configuration: YAML files with `_base_` inheritance, `--set a.b=c` overrides, a stable hash.

Only this module and the CLI see the config tree. Everything below receives typed keyword arguments.
Unknown keys and wrong types are rejected with the dotted key in the message, so no key can sit unused.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.core.errors import ConfigError

CONFIG_ROOT = Path(__file__).resolve().parents[2] / "configs"


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, types are checked."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(Strict):
    backbone: str = "hrnet_w32"
    # Where the backbone starts (harness/models/weights.py): "imagenet" (the weights its library publishes,
    # fetched into that library's cache: timm's tag from the Hugging Face hub, an mmpose config's init_cfg
    # URL), "embedded" (a clean model trained once on the task's embedded pretraining split,
    # harness/train/pretraining.py, `pretrain:` below), a local weights file, or null / "from_scratch"
    # (random initialisation).
    pretrained: str | None = None


class PretrainConfig(Strict):
    """The embedded pretraining stage, used only with `model.pretrained: embedded`."""

    steps: int = 400
    images: int = 1500  # size of the task's pretraining split (no image shared with train or val)
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 1000  # its own seed: the same checkpoint for every method and run seed
    # Intra-op CPU threads while pretraining. CPU float sums depend on the thread count, so a pinned count
    # makes the checkpoint the same under any OMP_NUM_THREADS on CPUs of one vector unit (README,
    # "What is bitwise reproducible"); null: the process's own count.
    threads: int | None = Field(1, ge=1)


class OcclusionConfig(Strict):
    enabled: bool = True
    clean_fraction: float = 1 / 3
    val_clean_fraction: float = 0.0  # the frozen occluded val covers every person
    patches_per_person: tuple[int, int] = (1, 3)
    size_range: tuple[float, float] = (0.25, 0.5)
    max_rotation: float = 45.0
    max_patches: int = 500
    val_seed: int = 0  # the frozen occluded val is built once per seed and shared by every method
    # Build the occluded val at this level of the task's severity ladder instead of the settings above
    # (pose: 0 = none ... 2 = the training default ... 4 = 3-5 large patches); a sweep axis.
    val_severity: int | None = None


class OptimConfig(Strict):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: list[int] = [170, 200]  # epochs at which the LR is multiplied by gamma
    gamma: float = 0.1


class TrainConfig(Strict):
    epochs: int = 1
    max_steps: int | None = None  # stop after this many optimizer steps (tests, quick runs)
    batch_size: int = 32
    eval_batch_size: int = 64
    num_workers: int | None = None  # None: chosen from the CPU count
    amp: bool = False  # mixed precision (harness/core/precision.py)
    amp_dtype: Literal["float16", "bfloat16"] = "float16"  # float16: CUDA only, with a grad scaler
    eval_every: int = 0  # score the clean val split every N epochs (0: only at the end)
    log_every: int = 10
    # The backbone this config's step budget was sized for: another backbone gets a warning that the
    # budget may be too small for it (e.g. HRNet-W32 on the CPU default sized for HRNet-W18-small).
    sized_for: str | None = None
    # Data-parallel ranks (harness/core/distributed.py): `batch_size` is per rank, so the global batch is
    # batch_size x world_size. Written by the run from its launch (`harness run --nproc N`, torchrun, a
    # sweep's `resources.workers_per_trial`); part of the hash, since every number depends on it.
    world_size: int = Field(1, ge=1)
    sync_bn: bool = False  # SyncBatchNorm across ranks (CUDA only)


class OutputConfig(Strict):
    work_dir: str = "work_dirs"  # run dirs: checkpoints, metrics.jsonl, TensorBoard events
    results_dir: str = "results"  # result records in results/runs/


class RunConfig(Strict):
    """The whole resolved configuration of one run."""

    task: str = "pose"
    method: str = "dslope"
    seed: int = 0
    device: str = "cpu"
    data: dict[str, Any] = {}  # validated against the task's own Settings
    method_args: dict[str, dict[str, Any]] = {}  # per method name, validated against its Settings
    model: ModelConfig = ModelConfig()
    pretrain: PretrainConfig = PretrainConfig()
    occlusion: OcclusionConfig = OcclusionConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    output: OutputConfig = OutputConfig()

    def unused_pretrain_keys(self) -> list[str]:
        """`pretrain.*` keys set to non-defaults while `model.pretrained` is not `embedded`: unused."""
        if self.model.pretrained == "embedded":
            return []
        default = PretrainConfig()
        return [f"pretrain.{k}" for k, v in self.pretrain if getattr(default, k) != v]

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        if data["model"].get("pretrained") != "embedded":  # unused: configs and hashes as before the section
            data.pop("pretrain", None)
        if data["occlusion"].get("val_severity") is None:  # unset: configs and hashes as before the key
            data["occlusion"].pop("val_severity", None)
        for key, single in (("world_size", 1), ("sync_bn", False)):  # one process: as before the keys
            if data["train"].get(key) == single:
                data["train"].pop(key, None)
        return data

    def hash(self) -> str:
        """Short sha256 of everything that can change the numbers (not where outputs go, not the device)."""
        payload = {k: v for k, v in self.to_dict().items() if k not in ("output", "device")}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML mapping with a one-line error naming the file and the line of a syntax error."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"YAML syntax error in {path}{where}: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def load_tree(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read `path` and merge it over its `_base_` file(s), which are resolved relative to it."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"circular _base_ chain through {path}")
    data = read_yaml(path)
    bases = data.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else bases
    merged: dict[str, Any] = {}
    for base in bases:
        merged = deep_merge(merged, load_tree(path.parent / base, (*_seen, path)))
    return deep_merge(merged, data)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge mappings; values of `override` win, lists are replaced whole."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=c` strings; values are parsed as YAML (`1e-3`, `[1, 2]`, `null`, `true`).

    A mapping value merges into an existing section like `_base_` does (`data={dataset: mpii, root: x}`
    changes two keys and keeps the rest), so one sweep axis can switch several keys at once.
    """
    tree = copy.deepcopy(tree)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got '{item}'")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: '{part}' is a value, not a section")
            node = child
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            value = deep_merge(node[parts[-1]], value)
        node[parts[-1]] = value
    return tree


def validate(tree: dict[str, Any], schema: type[BaseModel], prefix: str = "") -> BaseModel:
    """Validate a mapping against a schema, turning pydantic's report into one line naming the key."""
    try:
        return schema.model_validate(tree)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "")
        if first["type"] == "extra_forbidden":
            valid = ", ".join(schema_keys(schema, first["loc"][:-1]))
            raise ConfigError(f"unknown config key '{key}' (valid keys here: {valid})") from None
        raise ConfigError(f"config key '{key}': {first['msg']} (got {first.get('input')!r})") from None


def schema_keys(schema: type[BaseModel], loc: tuple) -> list[str]:
    """The field names valid at `loc` inside `schema` (for error messages)."""
    model = schema
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Build a validated RunConfig from a YAML file (or the defaults) plus overrides.

    Task- and method-specific sections are validated against the registered task's and method's own
    `Settings`, and written back with their defaults filled in, so the saved config is complete.

    Example:
        >>> cfg = load_config(CONFIG_ROOT / "pose/default.yaml", ["train.batch_size=8"])
    """
    tree = load_tree(path) if path else {}
    return config_from_tree(apply_overrides(tree, overrides or []))


def config_from_tree(tree: dict[str, Any]) -> RunConfig:
    """Validate a config mapping (a file's tree with overrides applied) into a complete RunConfig."""
    from harness.core.applicability import check_applicable
    from harness.core.registry import METHODS, TASKS

    cfg = validate(tree, RunConfig)
    task_cls = TASKS.get(cfg.task)
    data = validate(cfg.data, task_cls.Settings, prefix="data")
    check_applicable(cfg.occlusion, data, task_cls, cfg.task)
    cfg.data = data.model_dump(mode="json")
    method_args = {}
    for name, args in cfg.method_args.items():
        method_args[name] = validate(args, METHODS.get(name).Settings, f"method_args.{name}").model_dump(
            mode="json"
        )
    cfg.method_args = method_args
    METHODS.get(cfg.method)
    return cfg


def default_config_path(task: str) -> Path:
    """configs/<task>/default.yaml: the embedded default each task ships."""
    return CONFIG_ROOT / task / "default.yaml"


def save_config(cfg: RunConfig, path: Path) -> None:
    from harness.core.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
