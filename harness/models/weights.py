"""Where a backbone's starting weights come from, and fetching them the way the field does.

`model.pretrained: imagenet` resolves per backbone to the weights its library publishes: a timm backbone to
timm's pretrained tag for that architecture (timm's own `pretrained_cfg`: the Hugging Face hub repo and file,
cached under $HF_HOME/hub; HF_HUB_OFFLINE=1 reads the cache only), an `mmpose:*` backbone to the checkpoint
URL its mmpose config's `init_cfg` names (cached where mmengine caches it, torch hub's
$TORCH_HOME/hub/checkpoints). Each registered backbone declares its source in the file that defines it (the
factory's `imagenet` attribute); one without published ImageNet weights (e.g. LiteHRNet) says why in one line.

Only `imagenet` ever downloads, only a file missing from the cache, and before any training: a fetch that
cannot happen fails with the file or URL, the cache folder it belongs in and the `model.pretrained=/path`
alternative. The files are read by `harness/models/weight_files.py`, not by the libraries' loaders:
torch.hub's `load_state_dict_from_url`, which mmengine calls, unpickles with weights_only=False.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.core.cache import file_digest
from harness.core.errors import CheckpointError, ConfigError

IMAGENET = "imagenet"  # `model.pretrained` value: the weights the backbone's library publishes
FROM_SCRATCH = "from_scratch"  # `model.pretrained` value (as is null): random initialisation, on purpose
KEYWORDS = ("imagenet", "embedded", "from_scratch", "null")  # named in messages about a wrong value


@dataclass(frozen=True)
class HubWeights:
    """timm's pretrained weights on the Hugging Face hub: repo `timm/<arch>.<tag>`, fetched by
    `huggingface_hub.hf_hub_download` into its cache, trying the files in timm's order."""

    model: str  # timm's architecture.tag, e.g. hrnet_w32.ms_in1k
    repo_id: str
    filenames: tuple[str, ...]
    revision: str | None = None

    library = "timm"

    def describe(self) -> str:
        return f"timm {self.model} (hf-hub:{self.repo_id})"

    def fetch(self) -> Path:
        """The cached file, downloaded first when missing (unless HF_HUB_OFFLINE is set).

        Raises:
            CheckpointError: not cached and not downloadable (one line: file, cache folder, alternative).
        """
        from huggingface_hub import constants, hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, RemoteEntryNotFoundError

        reason = None
        for filename in self.filenames:
            # Once the hub could not be reached (each try waits out its retries), look in the cache only.
            cache_only = reason is not None and not isinstance(reason, RemoteEntryNotFoundError)
            try:
                path = hf_hub_download(
                    self.repo_id, filename, revision=self.revision, local_files_only=cache_only
                )
                return Path(path)
            except EntryNotFoundError as err:  # not on the hub, or (offline) not cached: timm tries the next
                reason = reason or err
            except Exception as err:  # noqa: BLE001  (network, HTTP, file-system errors: all say the same)
                reason = reason or err
        cache = Path(constants.HF_HUB_CACHE) / f"models--{self.repo_id.replace('/', '--')}"
        if constants.HF_HUB_OFFLINE:
            why = "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache"
        elif isinstance(reason, RemoteEntryNotFoundError):
            why = f"the hub repo has none of {', '.join(self.filenames)}"
        else:
            why = f"it is not cached and the hub cannot be reached ({type(reason).__name__})"
        raise CheckpointError(
            f"model.pretrained: imagenet: timm's {self.model} weights ({self.filenames[0]} of "
            f"https://huggingface.co/{self.repo_id}) are unavailable: {why}; the cache folder is {cache} "
            f"(fill it where there is network: `hf download {self.repo_id} {self.filenames[0]}` with the "
            f"same HF_HOME), or pass model.pretrained=/path/to/{self.filenames[0]}"
        )

    def provenance(self, path: Path) -> dict[str, Any]:
        return {
            "library": self.library, "tag": self.model, "url": f"https://huggingface.co/{self.repo_id}",
            "file": path.name, "sha256": file_digest(path),
        }  # fmt: skip


@dataclass(frozen=True)
class UrlWeights:
    """A checkpoint URL, cached as mmengine caches one (torch hub's `checkpoints` folder, the URL's file
    name), downloaded with the function torch.hub uses (to a temporary file, renamed when complete)."""

    url: str
    library: str = "mmengine"

    def describe(self) -> str:
        return f"{self.library} {self.url}"

    @property
    def file_name(self) -> str:
        return os.path.basename(urlparse(self.url).path)

    def cache_path(self) -> Path:
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name

    def fetch(self) -> Path:
        """The cached file, downloaded first when missing.

        Raises:
            CheckpointError: not cached and not downloadable (one line: URL, cache folder, alternative).
        """
        import torch

        path = self.cache_path()
        if path.is_file():
            return path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(self.url, str(path), progress=False)
        except Exception as err:  # noqa: BLE001  (URLError, HTTPError, OSError, timeouts)
            raise CheckpointError(
                f"model.pretrained: imagenet: cannot download {self.url} ({type(err).__name__}: "
                f"{str(err).strip().splitlines()[0] if str(err).strip() else 'no detail'}) and it is not in "
                f"{self.library}'s checkpoint cache {path.parent}; put {self.file_name} there, or pass "
                f"model.pretrained=/path/to/{self.file_name}"
            ) from None
        return path

    def provenance(self, path: Path) -> dict[str, Any]:
        return {"library": self.library, "url": self.url, "file": path.name, "sha256": file_digest(path)}


@dataclass(frozen=True)
class NoWeights:
    """A backbone whose library publishes no ImageNet weights, and why."""

    reason: str

    def describe(self) -> str:
        return f"none: {self.reason}"


WeightsSource = HubWeights | UrlWeights | NoWeights


def timm_weights(architecture: str, tag: str | None = None) -> WeightsSource:
    """timm's pretrained weights for `architecture` (its default tag unless `tag` names one), from timm's own
    pretrained config: the hub repo and file name when it has one, else its URL (timm caches those in
    torch hub's checkpoints folder too).

    Example:
        >>> timm_weights("hrnet_w32").describe()
        'timm hrnet_w32.ms_in1k (hf-hub:timm/hrnet_w32.ms_in1k)'
    """
    import timm

    name = f"{architecture}.{tag}" if tag and "." not in architecture else architecture
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError as err:  # a tag the architecture does not have
        return NoWeights(f"timm: {err}")
    if cfg is None:
        return NoWeights(f"timm has no pretrained weights named {name}")
    model = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else cfg.architecture
    # timm prefers the hub; `custom_load` marks a foreign format (JAX .npz) only for its URL, or a named hub
    # file (custom_load "hf") that only the model's own code reads.
    if cfg.hf_hub_id and not (cfg.hf_hub_filename and cfg.custom_load):
        repo_id, _, revision = cfg.hf_hub_id.partition("@")
        files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else ("model.safetensors", "pytorch_model.bin")
        return HubWeights(model, repo_id, files, revision or None)
    if cfg.url and not cfg.custom_load:
        return UrlWeights(cfg.url, library="timm")
    return NoWeights(f"timm publishes {model} only in a format its model code alone reads, or names no file")


def imagenet_weights(backbone: str) -> WeightsSource:
    """What `model.pretrained: imagenet` means for `backbone` (a registered name or `timm:<name>`); nothing
    is fetched. Registered factories declare it as their `imagenet` attribute (a source or a function
    returning one)."""
    from harness.core.registry import BACKBONES

    if backbone.startswith("timm:"):
        return timm_weights(backbone.split(":", 1)[1])
    declared = getattr(BACKBONES.get(backbone), "imagenet", None)
    if declared is None:
        return NoWeights(f"backbone {backbone} declares no ImageNet weights")
    return declared() if callable(declared) else declared


def declare_imagenet(factory: Callable, source: WeightsSource | Callable[[], WeightsSource]) -> Callable:
    """Attach a backbone factory's ImageNet source (what `imagenet_weights` reads); returns the factory."""
    factory.imagenet = source
    return factory


@dataclass(frozen=True)
class StartingWeights:
    """A weights file on this machine the backbone loads, and what every record says about it."""

    path: Path
    provenance: dict[str, Any]


def starting_weights(pretrained: str | None, backbone: str) -> StartingWeights | None:
    """The file `model.pretrained` names for `backbone`: ImageNet weights fetched into their library's cache,
    or a local file; None for null / from_scratch (random initialisation) and for `embedded` (built by
    harness.train.pretraining).

    Raises:
        ConfigError: `imagenet` for a backbone without ImageNet weights.
        CheckpointError: the weights cannot be fetched, or the local file does not exist.
    """
    if pretrained in (None, FROM_SCRATCH, "embedded"):
        return None
    if pretrained == IMAGENET:
        source = _imagenet_or_fail(backbone)
        path = source.fetch()
        return StartingWeights(path, {"source": IMAGENET, **source.provenance(path)})
    path = Path(pretrained).expanduser()
    if not path.is_file():
        expected = f"a weights file or one of {', '.join(KEYWORDS)}"
        raise CheckpointError(f"model.pretrained: file not found: {path} (expected {expected})")
    return StartingWeights(path, {"source": "file", "file": path.name, "sha256": file_digest(path)})


def describe_start(pretrained: str | None, backbone: str) -> str:
    """What a run with this `model.pretrained` starts from, in a few words (sweep dry runs); fetches nothing.

    Raises:
        ConfigError: `imagenet` for a backbone without ImageNet weights.
    """
    if pretrained in (None, FROM_SCRATCH):
        return "from scratch"
    if pretrained == IMAGENET:
        return f"imagenet: {_imagenet_or_fail(backbone).describe()}"
    if pretrained == "embedded":
        return "embedded pretraining"
    return f"file {Path(pretrained).name}"


def _imagenet_or_fail(backbone: str) -> HubWeights | UrlWeights:
    source = imagenet_weights(backbone)
    if isinstance(source, NoWeights):
        raise ConfigError(
            f"model.pretrained: imagenet: {backbone} has no ImageNet weights ({source.reason}); set "
            f"model.pretrained to from_scratch or to a weights file"
        )
    return source
