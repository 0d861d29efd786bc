"""Import `mmpose.models` without mmdet and without mmcv's compiled ops (the optional mmpose extra).

Why a shim: `import mmpose.models` imports every head, and two heads a backbone never uses import things the
lean extra (mmcv-lite, no mmdet) cannot provide:
- `mmpose/models/heads/hybrid_heads/rtmo_head.py`: `from mmdet.utils import ConfigType, reduce_mean`;
- `mmpose/models/heads/transformer_heads/edpose_head.py`:
  `from mmcv.ops import MultiScaleDeformableAttention`.

Only when such an import fails does `import_mmpose_models` put a stand-in module under that name, for the
duration of the import alone: afterwards `sys.modules` is as before, so `import mmdet` still fails for
everyone else. A stubbed class raises `MMPoseStubError` if anything ever builds it (RTMO's or ED-Pose's
head), so a stub can never compute silently. Where mmdet / mmcv's full build is installed, no shim is used.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import logging
import sys
import types
import warnings
from collections.abc import Iterator
from typing import Any

from harness.core.errors import ConfigError

INSTALL_HINT = "install the optional extra with `make setup-mmpose` (see README, 'mmpose backbones')"


class MMPoseStubError(RuntimeError):
    """A class the import shim stands in for was built: it needs the real mmdet / full mmcv."""


def _stub_class(name: str, needs: str) -> type:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise MMPoseStubError(
            f"{name} is a stand-in from harness.models.mmpose_imports: it needs {needs}, which the mmpose "
            "extra does not install (only mmpose's backbones are supported)"
        )

    doc = f"Stand-in for {needs}'s {name}; cannot be built."
    return type(name, (), {"__init__": refuse, "__doc__": doc, "__module__": __name__})


def _stub_function(name: str, needs: str):
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise MMPoseStubError(
            f"{name} is a stand-in: it needs {needs}, which the mmpose extra does not install"
        )

    refuse.__name__ = name
    return refuse


def _importable(module: str, attribute: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), attribute)
    except Exception:  # ImportError, or mmcv.ops failing to load its missing compiled extension
        return False


def _stand_ins() -> dict[str, types.ModuleType]:
    """The stand-in modules needed on this install (none where mmdet and full mmcv are present)."""
    modules: dict[str, types.ModuleType] = {}
    if not _importable("mmdet.utils", "reduce_mean"):
        package = types.ModuleType("mmdet")
        package.__path__ = []  # a package, so `mmdet.utils` resolves below it
        utils = types.ModuleType("mmdet.utils")
        utils.ConfigType = Any  # a typing alias in mmdet (ConfigDict | dict); used in annotations only
        utils.reduce_mean = _stub_function("reduce_mean", "mmdet")
        package.utils = utils
        modules.update({"mmdet": package, "mmdet.utils": utils})
    if not _importable("mmcv.ops", "MultiScaleDeformableAttention"):
        ops = types.ModuleType("mmcv.ops")
        stub = _stub_class("MultiScaleDeformableAttention", "mmcv's compiled ops")
        ops.MultiScaleDeformableAttention = stub
        modules["mmcv.ops"] = ops
    return modules


def extra_status() -> str | None:
    """None when the mmpose extra is installed, else why not; cheap (no import of mmpose itself)."""
    for package in ("mmpose", "mmengine", "mmcv"):
        if importlib.util.find_spec(package) is None:
            return f"{package} is not installed"
    version = importlib.metadata.version("mmpose")
    if version != "1.3.2":
        return f"mmpose {version} is installed, the backbones are written for 1.3.2"
    return None


def mmpose_extra_line() -> str:
    """What `harness list` says about the extra."""
    missing = extra_status()
    if missing is None:
        return "installed (mmpose 1.3.2): the mmpose:* backbones can be built"
    return f"not installed ({missing}): mmpose:* backbones need `make setup-mmpose`"


def import_mmpose_models() -> types.ModuleType:
    """`mmpose.models`, imported with the stand-ins in place only while it imports.

    Raises:
        ConfigError: the extra is missing or mmpose fails to import (one line, with the install hint).
    """
    missing = extra_status()
    if missing is not None:
        raise ConfigError(
            f"model.backbone: mmpose backbones need the mmpose extra ({missing}); {INSTALL_HINT}"
        )
    if "mmpose.models" in sys.modules:
        return sys.modules["mmpose.models"]
    stand_ins = _stand_ins()
    saved = {name: sys.modules[name] for name in stand_ins if name in sys.modules}
    sys.modules.update(stand_ins)
    try:
        with warnings.catch_warnings():
            # mmcv-lite says it lacks MultiScaleDeformableAttention: known, and the shim covers it.
            warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention.*")
            models = importlib.import_module("mmpose.models")
        # CSPNeXt's layers call the deprecated torch.cuda.amp.autocast on every forward: mmpose's to fix.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"mmpose\.")
        return models
    except Exception as err:
        raise ConfigError(
            f"model.backbone: mmpose is installed but `import mmpose.models` failed "
            f"({type(err).__name__}: {err}); {INSTALL_HINT}"
        ) from None
    finally:
        for name in stand_ins:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


@contextlib.contextmanager
def quiet_mmengine() -> Iterator[None]:
    """Silence mmengine's logger below WARNING: `init_weights()` logs one INFO entry per parameter."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class _DistributionNotFound(Exception):
    """pkg_resources.DistributionNotFound of the stand-in."""


class _Distribution:
    """The part of a pkg_resources Distribution mmengine reads: location, version, metadata files."""

    def __init__(self, dist: importlib.metadata.Distribution):
        self._dist = dist
        self.location = str(dist.locate_file(""))
        self.version = dist.version
        self.project_name = dist.metadata["Name"]

    def has_metadata(self, name: str) -> bool:
        return self._dist.read_text(name) is not None

    def get_metadata(self, name: str) -> str:
        return self._dist.read_text(name) or ""


def _get_distribution(name: str) -> _Distribution:
    try:
        return _Distribution(importlib.metadata.distribution(name))
    except importlib.metadata.PackageNotFoundError:
        raise _DistributionNotFound(name) from None


def _pkg_resources_stand_in() -> dict[str, types.ModuleType]:
    """`pkg_resources` backed by importlib.metadata, where setuptools no longer ships it (81 and later):
    `mmpose.apis` resolves its install folder with mmengine's `get_installed_path` when it is imported."""
    if importlib.util.find_spec("pkg_resources") is not None:
        return {}
    module = types.ModuleType("pkg_resources")
    module.get_distribution = _get_distribution
    module.DistributionNotFound = _DistributionNotFound
    return {"pkg_resources": module}


def import_mmpose_apis() -> types.ModuleType:
    """`mmpose.apis` (inference_topdown, init_model), the reference the harness's mmpose adapter is tested
    against: `mmpose.models` through the shim above, and `pkg_resources` stood in only while it imports
    and only when setuptools lacks it.

    Raises:
        ConfigError: the extra is missing or mmpose.apis fails to import.
    """
    import_mmpose_models()
    if "mmpose.apis" in sys.modules:
        return sys.modules["mmpose.apis"]
    stand_ins = _pkg_resources_stand_in()
    sys.modules.update(stand_ins)
    try:
        return importlib.import_module("mmpose.apis")
    except Exception as err:
        raise ConfigError(
            f"`import mmpose.apis` failed ({type(err).__name__}: {err}); {INSTALL_HINT}"
        ) from None
    finally:
        for name in stand_ins:
            sys.modules.pop(name, None)
