"""Keys that cannot apply are errors: a config never carries a setting that is silently dropped.

The typed schema already rejects unknown keys; this catches known keys whose value the chosen data or
task cannot use (a dataset root while the data is the embedded synthetic set, an occlusion key the task's
occluders do not read, a severity level off the task's ladder), naming the key and why.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from harness.core.errors import ConfigError


def check_applicable(occlusion: BaseModel, data: BaseModel, task_cls: Any, task: str) -> None:
    """Raise ConfigError naming the first key of `data` / `occlusion` the task cannot use.

    Args:
        occlusion: the validated `occlusion` section (its class holds the defaults).
        data: the task's validated `data` settings.
        task_cls: the registered task class (`unused_data_keys`, `ignored_occlusion_keys`,
            `severity_levels`).
        task: its registered name, for messages.
    """
    unused = task_cls.unused_data_keys(data)
    if unused:
        key, why = next(iter(unused.items()))
        raise ConfigError(f"config key '{key}' cannot apply: {why}")
    defaults = type(occlusion).model_fields
    for key in task_cls.ignored_occlusion_keys:
        if getattr(occlusion, key) != defaults[key].default:
            raise ConfigError(
                f"config key 'occlusion.{key}' cannot apply: the {task} task's occluders do not read it "
                f"(leave it at {defaults[key].default!r})"
            )
    level = getattr(occlusion, "val_severity", None)
    if level is not None and level not in task_cls.severity_levels:
        ladder = ", ".join(map(str, task_cls.severity_levels)) or "none: this task has no severity ladder"
        raise ConfigError(
            f"config key 'occlusion.val_severity': {level} is not a level of the ladder ({ladder})"
        )
