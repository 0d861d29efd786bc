"""`model.pretrained: imagenet`: resolution per backbone, loading from caches laid out as timm (Hugging Face
hub) and mmengine (torch hub checkpoints) lay them out, written here from random models, the offline
errors and the refusal of partial or mismatched files. Nothing is downloaded: the hub runs offline and the
one URL fetched points at a closed local port."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from harness.core.cache import file_digest
from harness.core.errors import CheckpointError, ConfigError
from harness.core.registry import BACKBONES
from harness.models.backbones import create_backbone
from harness.models.weights import HubWeights, NoWeights, UrlWeights, imagenet_weights, starting_weights

REVISION = "a" * 40  # a commit hash: what refs/main names in a hub cache


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face hub cache, offline (huggingface_hub reads both settings at call time)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty torch hub folder (TORCH_HOME), where mmengine caches checkpoint URLs."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def put_in_hub(hub: Path, repo_id: str, filename: str, state: dict) -> Path:
    """A file as `hf_hub_download` caches it: models--org--name/snapshots/<rev>/<file>, refs/main -> <rev>."""
    folder = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = folder / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(REVISION)
    path = snapshot / filename
    if filename.endswith(".safetensors"):
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    return path


def classifier_state(architecture: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random timm classification model's state dict: what timm publishes for an ImageNet tag."""
    torch.manual_seed(seed)
    return timm.create_model(architecture, pretrained=False).state_dict()


# Resolution


def test_every_registered_backbone_resolves_imagenet():
    sources = {name: imagenet_weights(name) for name in BACKBONES.names()}
    for name, source in sources.items():
        assert isinstance(source, HubWeights | UrlWeights | NoWeights), name
        assert source.describe(), name
        if isinstance(source, HubWeights):  # a tag timm knows, on timm's hub organisation
            assert source.model in timm.list_pretrained(source.model), name
            assert source.repo_id == f"timm/{source.model}" and source.filenames[0] == "model.safetensors"
    # The field's choices: the HRNet authors' weights, torchvision's ResNets (SimpleBaseline's start).
    assert sources["hrnet_w32"].model == "hrnet_w32.ms_in1k"
    assert sources["hrnetv2_w18"].model == "hrnet_w18.ms_in1k"
    assert sources["resnet50"].model == "resnet50.tv_in1k"
    assert sources["vit_tiny_patch16_224"].model == "vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    assert isinstance(sources["fan"], NoWeights) and "300W-LP" in sources["fan"].reason
    assert isinstance(imagenet_weights("timm:convnext_tiny"), HubWeights)


def _init_cfg_checkpoint(config: Path) -> str | None:
    """The backbone's init_cfg checkpoint URL in an mmpose config file (read as Python, not executed)."""
    tree = ast.parse(config.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "init_cfg":
            fields = {k.arg: k.value for k in node.value.keywords}
            return ast.literal_eval(fields["checkpoint"]) if "checkpoint" in fields else None
    return None


def test_mmpose_backbones_resolve_to_their_reference_configs_init_cfg():
    """Every mmpose:* backbone fetches exactly the checkpoint its mmpose 1.3.2 config names (none for
    LiteHRNet, whose configs train from scratch)."""
    pytest.importorskip("mmpose")
    import mmpose

    from harness.models.mmpose_backbones import ARCHS

    configs = Path(mmpose.__file__).parent / ".mim" / "configs" / "body_2d_keypoint"
    for name, arch in ARCHS.items():
        url = _init_cfg_checkpoint(configs / arch.reference)
        source = imagenet_weights(f"mmpose:{name}")
        if url is None:
            assert isinstance(source, NoWeights), name
        else:
            assert isinstance(source, UrlWeights) and source.url == url, name


# Loading from the caches


def test_imagenet_loads_timm_weights_from_the_hub_cache_and_the_record_says_which(hub):
    state = classifier_state("hrnet_w18_small")
    path = put_in_hub(hub, "timm/hrnet_w18_small.ms_in1k", "model.safetensors", state)
    weights = starting_weights("imagenet", "hrnet_w18_small")
    assert weights.path == path
    assert weights.provenance == {
        "source": "imagenet", "library": "timm", "tag": "hrnet_w18_small.ms_in1k",
        "url": "https://huggingface.co/timm/hrnet_w18_small.ms_in1k", "file": "model.safetensors",
        "sha256": file_digest(path),
    }  # fmt: skip
    backbone = create_backbone("hrnet_w18_small", str(weights.path))
    for key, value in backbone.body.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_timm_falls_back_to_pytorch_model_bin_offline(hub):
    """timm's order: model.safetensors, then pytorch_model.bin (a cache may hold only the latter)."""
    state = classifier_state("resnet18")
    path = put_in_hub(hub, "timm/resnet18.tv_in1k", "pytorch_model.bin", state)
    weights = starting_weights("imagenet", "resnet18")
    assert weights.path == path and weights.provenance["file"] == "pytorch_model.bin"
    backbone = create_backbone("resnet18", str(weights.path))
    assert torch.equal(backbone.body.state_dict()["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])


def test_resnet18_stride8_starts_from_resnet18s_imagenet_file(hub):
    """The truncated ResNet-18 reads torchvision's ResNet-18 file: the stages it has, the rest of the file
    (layer3, layer4, the classifier) unused, as the classifier is for every backbone."""
    assert imagenet_weights("resnet18_stride8").model == "resnet18.tv_in1k"
    state = classifier_state("resnet18")
    put_in_hub(hub, "timm/resnet18.tv_in1k", "model.safetensors", state)
    weights = starting_weights("imagenet", "resnet18_stride8")
    backbone = create_backbone("resnet18_stride8", str(weights.path))
    own = backbone.body.state_dict()
    assert own and all(torch.equal(value, state[key]) for key, value in own.items())


def test_vit_weights_are_resampled_by_timm_to_the_input_size(hub):
    state = classifier_state("vit_tiny_patch16_224")
    put_in_hub(hub, "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k", "model.safetensors", state)
    weights = starting_weights("imagenet", "vit_tiny_patch16_224")
    backbone = create_backbone("vit_tiny_patch16_224", str(weights.path), input_size=(128, 96))
    own = backbone.body.state_dict()
    assert own["model.pos_embed"].shape == (1, 1 + 8 * 6, 192)  # 224 -> 128x96: 14x14 -> 8x6 patches
    assert torch.equal(own["model.blocks.11.mlp.fc2.weight"], state["blocks.11.mlp.fc2.weight"])


def test_imagenet_loads_mmpose_weights_from_mmengines_cache(torch_home):
    pytest.importorskip("mmpose")
    source = imagenet_weights("mmpose:hrformer_small")
    torch.manual_seed(0)
    reference = create_backbone("mmpose:hrformer_small")
    torch_home.mkdir(parents=True)
    path = torch_home / "hrformer_small-09516375_20220226.pth"
    torch.save({"state_dict": reference.body.state_dict(), "meta": {"epoch": 100}}, path)
    assert source.cache_path() == path
    weights = starting_weights("imagenet", "mmpose:hrformer_small")
    assert weights.path == path
    assert weights.provenance == {
        "source": "imagenet", "library": "mmengine", "url": source.url, "file": path.name,
        "sha256": file_digest(path),
    }  # fmt: skip
    torch.manual_seed(1)
    loaded = create_backbone("mmpose:hrformer_small", str(weights.path))
    for key, value in reference.body.state_dict().items():
        assert torch.equal(value, loaded.body.state_dict()[key]), key


def test_swin_release_naming_is_converted_as_mmpose_converts_it(tmp_path):
    """The Swin authors' file ({'model': ...}, `layers.*`) loads into mmpose's Swin; only norm3, which the
    release has no counterpart of, keeps its initialisation."""
    pytest.importorskip("mmpose")
    torch.manual_seed(0)
    reference = create_backbone("mmpose:swin_t").body.state_dict()

    def release_name(key: str) -> str:  # mmpose's naming back to the release's (swin_converter's inverse)
        key = key.replace("stages", "layers", 1).replace("attn.w_msa.", "attn.")
        key = key.replace("ffn.layers.0.0.", "mlp.fc1.").replace("ffn.layers.1.", "mlp.fc2.")
        return key.replace("patch_embed.projection", "patch_embed.proj")

    def unfold_order(value: torch.Tensor, key: str) -> torch.Tensor:  # the reduction reorder, inverted
        if "downsample.reduction" in key:
            out, inp = value.shape
            return value.reshape(out, inp // 4, 4).transpose(1, 2)[:, [0, 2, 1, 3], :].reshape(out, inp)
        if "downsample.norm" in key:
            return value.reshape(-1, 4).transpose(0, 1)[[0, 2, 1, 3], :].reshape(-1)
        return value

    release = {release_name(k): unfold_order(v, k) for k, v in reference.items() if not k.startswith("norm3")}
    path = tmp_path / "swin_tiny_patch4_window7_224.pth"
    torch.save({"model": release}, path)
    torch.manual_seed(1)
    loaded = create_backbone("mmpose:swin_t", str(path)).body.state_dict()
    for key, value in reference.items():
        if not key.startswith("norm3"):
            assert torch.equal(value, loaded[key]), key


# Offline, unreachable, partial, mismatched


def test_offline_hub_without_the_file_fails_in_one_line_naming_file_cache_and_alternative(hub):
    with pytest.raises(CheckpointError) as caught:
        starting_weights("imagenet", "hrnet_w32")
    message = str(caught.value)
    assert "\n" not in message
    assert "model.safetensors of https://huggingface.co/timm/hrnet_w32.ms_in1k" in message
    assert "HF_HUB_OFFLINE is set" in message
    assert str(hub / "models--timm--hrnet_w32.ms_in1k") in message
    assert "model.pretrained=/path/to/model.safetensors" in message


def test_unreachable_url_fails_in_one_line_and_leaves_nothing_in_the_cache(torch_home):
    source = UrlWeights("http://127.0.0.1:9/mmpose/pretrain_models/hrnet_w32-36af842e.pth")  # closed port
    with pytest.raises(CheckpointError) as caught:
        source.fetch()
    message = str(caught.value)
    assert "\n" not in message and "cannot download http://127.0.0.1:9/" in message
    assert f"checkpoint cache {torch_home}" in message
    assert "model.pretrained=/path/to/hrnet_w32-36af842e.pth" in message
    assert not torch_home.is_dir() or not any(torch_home.iterdir())


def test_imagenet_for_a_backbone_without_weights_is_a_config_error():
    with pytest.raises(ConfigError, match=r"imagenet: fan has no ImageNet weights .*from_scratch"):
        starting_weights("imagenet", "fan")


def test_a_partial_checkpoint_is_refused_with_its_first_missing_key(hub):
    state = classifier_state("hrnet_w18_small")
    del state["stage3.0.branches.1.0.conv2.weight"]
    put_in_hub(hub, "timm/hrnet_w18_small.ms_in1k", "model.safetensors", state)
    weights = starting_weights("imagenet", "hrnet_w18_small")
    with pytest.raises(CheckpointError) as caught:
        create_backbone("hrnet_w18_small", str(weights.path))
    first = r"first: stage3\.0\.branches\.1\.0\.conv2\.weight"
    assert re.search(rf"1 of its \d+ tensors are not in the file \({first}\)", str(caught.value))
    assert "nothing was loaded" in str(caught.value)


def test_another_architectures_weights_are_refused(hub):
    """resnet18's file in the cache where resnet50's belongs: refused with the first key resnet50 lacks."""
    put_in_hub(hub, "timm/resnet50.tv_in1k", "model.safetensors", classifier_state("resnet18"))
    weights = starting_weights("imagenet", "resnet50")
    fragment = r"does not fit the backbone: 165 of its 265 tensors .*first: layer1\.0\.conv3\.weight"
    with pytest.raises(CheckpointError, match=fragment):
        create_backbone("resnet50", str(weights.path))


def test_a_truncated_cached_file_is_refused(hub):
    path = put_in_hub(hub, "timm/resnet18.tv_in1k", "pytorch_model.bin", classifier_state("resnet18"))
    path.write_bytes(path.read_bytes()[:1000])
    weights = starting_weights("imagenet", "resnet18")
    with pytest.raises(CheckpointError, match="pytorch_model.bin is corrupt or unsafe: truncated"):
        create_backbone("resnet18", str(weights.path))


def test_from_scratch_and_null_are_recorded_as_such():
    from harness.run.setup import pretrained_provenance

    assert starting_weights(None, "hrnet_w32") is None
    assert starting_weights("from_scratch", "hrnet_w32") is None
    assert pretrained_provenance(None, None) == {"source": "from_scratch"}


def test_a_local_file_keeps_working_and_is_recorded_by_name(tmp_path):
    path = tmp_path / "my_weights.pth"
    torch.save(classifier_state("resnet18"), path)
    weights = starting_weights(str(path), "resnet18")
    assert weights.provenance == {"source": "file", "file": "my_weights.pth", "sha256": file_digest(path)}
    with pytest.raises(CheckpointError, match=r"file not found: .*missing\.pth \(expected a weights file or"):
        starting_weights(str(tmp_path / "missing.pth"), "resnet18")
