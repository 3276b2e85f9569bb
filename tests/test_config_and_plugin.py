"""Plugin discovery through LeRobot, config validation, and the variants' architectures."""

import re
import sys
import textwrap

import pytest
import torch
from lerobot.policies.factory import make_pre_post_processors
from lerobot.policies.pi0 import modeling_pi0
from lerobot.policies.pi0.configuration_pi0 import PI0Config
from lerobot.policies.pi0.modeling_pi0 import PI0Pytorch
from lerobot.policies.pi05 import modeling_pi05
from lerobot.policies.pi05.configuration_pi05 import PI05Config
from lerobot.policies.pi05.modeling_pi05 import PI05Pytorch
from transformers import AutoTokenizer

from lerobot_policy_reconvla.configuration_reconvla import TINY_TOKENIZER_DIR, TINY_VOCAB_SIZE, ReconVLAConfig
from lerobot_policy_reconvla.configuration_reconvla_pi05 import ReconVLAPi05Config
from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy, ReconVLAPytorch
from lerobot_policy_reconvla.modeling_reconvla_pi05 import ReconVLAPi05Policy, ReconVLAPi05Pytorch
from tests.fixtures import processes
from tests.fixtures.tiny_policy import tiny_config


def test_lerobot_discovers_the_plugin_in_a_fresh_interpreter():
    # A fresh process: nothing of ours is imported until LeRobot's own plugin discovery runs.
    script = textwrap.dedent(
        """
        from lerobot.configs import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_policy_config, make_pre_post_processors
        from lerobot.utils.import_utils import register_third_party_plugins
        assert "reconvla" not in PreTrainedConfig.get_known_choices()
        register_third_party_plugins()
        assert "reconvla" in PreTrainedConfig.get_known_choices()
        from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy
        from lerobot_policy_reconvla.processor_reconvla import ReconVLATokenizerProcessorStep
        assert get_policy_class("reconvla") is ReconVLAPolicy
        config = make_policy_config(
            "reconvla", paligemma_variant="tiny", action_expert_variant="tiny", device="cpu"
        )
        pre, post = make_pre_post_processors(config)
        assert any(isinstance(step, ReconVLATokenizerProcessorStep) for step in pre.steps)
        print("discovered")
        """
    )
    result = processes.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "discovered" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"paligemma_variant": "gemma_7b"}, r"paligemma_variant='gemma_7b'.*expected one of"),
        ({"action_expert_variant": "gemma_300m"}, "both be 'tiny'"),
        (
            {"paligemma_variant": "gemma_300m", "action_expert_variant": "gemma_300m"},
            "gemma_300m' cannot run",
        ),
        ({"dtype": "float16"}, r"dtype='float16'; expected one of \('bfloat16', 'float32'\)"),  # pi0's check
        ({"recon_target": "rgb"}, r"recon_target='rgb'; expected one of \('vae', 'pixels'\)"),
        ({"recon_target": "vae", "recon_vae": None}, "recon_target='vae' needs recon_vae"),
        # The tiny test policy's grid is 8 x 8 tokens (112 px).
        ({"recon_image_size": 36}, r"recon_image_size=36 must be a multiple of the image-token grid \(8"),
        (
            {"recon_target": "vae", "recon_image_size": 96},
            r"recon_image_size=96 must be a multiple of recon_vae_downsample=8 x",
        ),
        (
            {"recon_head_dtype": "float16"},
            r"recon_head_dtype='float16'; expected one of \('float32', 'bfloat16'\)",
        ),
        ({"recon_vae_latent_channels": 0}, "recon_vae_latent_channels=0; expected >= 1"),
        ({"recon_dit_width": 30, "recon_dit_heads": 4}, "recon_dit_width=30 must be divisible"),
        ({"recon_layer": 2}, r"recon_layer=2 is outside the 2 layers of 'tiny'"),
        ({"recon_weight": -1.0}, "recon_weight=-1.0"),
        ({"recon_timestep_repeats": 0}, "recon_timestep_repeats=0"),
        ({"recon_lr_scale": 0.0}, "recon_lr_scale=0.0"),
        ({"n_action_steps": 20}, r"n_action_steps=20 cannot be greater than chunk_size=8"),  # pi0's check too
        ({"image_resolution": (224, 256)}, "square"),
    ],
)
def test_impossible_settings_are_rejected_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_gaze_boxes_are_training_targets_not_policy_inputs():
    from lerobot.configs import FeatureType, PolicyFeature

    config = tiny_config()
    config.input_features["observation.gaze_box.top"] = PolicyFeature(FeatureType.STATE, (4,))
    config.validate_features()
    assert "observation.gaze_box.top" not in config.input_features
    assert config.camera_keys == [f"observation.images.{c}" for c in ("top", "left_wrist", "right_wrist")]


def test_no_camera_is_a_clear_error():
    config = tiny_config(cameras=())
    with pytest.raises(ValueError, match="needs at least one camera"):
        config.validate_features()


# Per base: LeRobot's config, core, modeling module, and ReconVLA's config, core and policy on it.
BASES = {
    "pi0": (PI0Config, PI0Pytorch, modeling_pi0, ReconVLAConfig, ReconVLAPytorch, ReconVLAPolicy),
    "pi05": (
        PI05Config,
        PI05Pytorch,
        modeling_pi05,
        ReconVLAPi05Config,
        ReconVLAPi05Pytorch,
        ReconVLAPi05Policy,
    ),
}


@pytest.mark.parametrize("base", sorted(BASES))
@pytest.mark.parametrize("expert", ["gemma_300m", "gemma_2b"])
def test_full_variants_have_exactly_the_bases_parameters_plus_the_head(base, expert):
    # Built on the meta device: shapes and dtypes without allocating 3B parameters.
    base_config, base_core, _, config_class, core_class, _ = BASES[base]
    sizes = dict(paligemma_variant="gemma_2b", action_expert_variant=expert, dtype="bfloat16", device="cpu")
    with torch.device("meta"):
        upstream = base_core(base_config(**sizes))
        ours = core_class(config_class(**sizes, recon_target="pixels"))
    expected = {k: (tuple(v.shape), v.dtype) for k, v in upstream.state_dict().items()}
    got = {
        k: (tuple(v.shape), v.dtype) for k, v in ours.state_dict().items() if not k.startswith("recon_head.")
    }
    assert got == expected
    assert any(k.startswith("recon_head.dit.") for k in ours.state_dict())
    # The config's checks use the sizes the model was built with.
    language_model = ours.paligemma_with_expert.paligemma.model.language_model
    assert ours.config.language_depth == len(language_model.layers) == 18
    assert (
        ours.config.vision_patch_size == ours.paligemma_with_expert.paligemma.config.vision_config.patch_size
    )


def test_tiny_variant_sizes_are_the_configs():
    policy = ReconVLAPolicy(tiny_config())
    towers = policy.model.paligemma_with_expert
    assert policy.config.language_depth == len(towers.paligemma.model.language_model.layers)
    assert policy.config.vision_patch_size == towers.paligemma.config.vision_config.patch_size
    image = torch.zeros(1, 3, *policy.config.image_resolution)
    assert towers.embed_image(image).shape[1] == policy.config.recon_token_grid**2  # tokens per camera
    assert not any(p.is_meta for p in policy.parameters())  # pi0's meta-device build left nothing behind


def _layout(model: torch.nn.Module) -> set[tuple[str, type, torch.dtype]]:
    """A model's parameters by name (layer numbers left out), module type and dtype: its architecture."""
    modules = dict(model.named_modules())
    return {
        (re.sub(r"\.\d+\.", ".N.", name), type(modules[name.rpartition(".")[0]]), parameter.dtype)
        for name, parameter in model.named_parameters()
    }


@pytest.mark.parametrize("base", sorted(BASES))
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_tiny_variant_is_the_bases_architecture_with_its_dtypes(base, dtype):
    base_config, base_core, base_modeling, config_class, _, policy_class = BASES[base]
    with torch.device("meta"):
        sizes = dict(paligemma_variant="gemma_2b", action_expert_variant="gemma_300m", dtype=dtype)
        stock = base_core(base_config(**sizes))
    tiny = policy_class(tiny_config(config_class=config_class, dtype=dtype)).model
    assert type(tiny.paligemma_with_expert) is base_modeling.PaliGemmaWithExpertModel
    ours = {entry for entry in _layout(tiny) if not entry[0].startswith("recon_head.")}
    assert ours == _layout(stock)


@pytest.mark.parametrize(
    ("setting", "frozen"),
    [("freeze_vision_encoder", "paligemma.model.vision_tower."), ("train_expert_only", "paligemma.")],
)
def test_tiny_variant_freezes_as_pi0_does(setting, frozen):
    model = ReconVLAPolicy(tiny_config(**{setting: True})).model
    trainable = {name for name, p in model.paligemma_with_expert.named_parameters() if p.requires_grad}
    every = {name for name, _ in model.paligemma_with_expert.named_parameters()}
    assert trainable == {name for name in every if not name.startswith(frozen)} != every


def test_tiny_variant_is_a_few_million_parameters_and_fits_its_tokenizer():
    policy = ReconVLAPolicy(tiny_config())
    total = sum(p.numel() for p in policy.parameters())
    vision = sum(
        p.numel() for p in policy.model.paligemma_with_expert.paligemma.model.vision_tower.parameters()
    )
    assert 1_000_000 < total < 10_000_000, total
    assert vision > 100_000  # the vision tower is real (SigLIP), just small
    tokenizer = AutoTokenizer.from_pretrained(TINY_TOKENIZER_DIR)
    assert len(tokenizer) <= TINY_VOCAB_SIZE
    ids = tokenizer("Pick up the cube with the right arm and transfer it to the left arm.\n")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and len(ids) < 48  # fits pi0's 48-token prompt


@pytest.mark.parametrize("base", sorted(BASES))
def test_every_base_setting_defaults_to_the_bases_value(base):
    """A user switching --policy.type=pi0 to reconvla (pi05 to reconvla_pi05) changes nothing of the base's
    recipe; only recon_* and a few fields are added."""
    import dataclasses

    base_config, _, _, config_class, _, _ = BASES[base]
    ours, stock = config_class(device="cpu"), base_config(device="cpu")
    differing = {
        f.name for f in dataclasses.fields(base_config) if getattr(ours, f.name) != getattr(stock, f.name)
    }
    assert differing == set()
    added = {f.name for f in dataclasses.fields(config_class)} - {
        f.name for f in dataclasses.fields(base_config)
    }
    assert added and all(
        name.startswith("recon_")
        or name in {"cameras", "tokenizer_name", "optimizer_type", "image_shift_pixels"}
        for name in added
    ), added
    assert (
        ours.resolved_tokenizer_name == "google/paligemma-3b-pt-224"
    )  # the base's own tokenizer when none is set


def test_cameras_selects_and_orders_a_subset_and_rejects_unknown_names():
    config = tiny_config(cameras=("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist"))
    config.cameras = ["cam_right_wrist", "cam_high", "cam_left_wrist"]
    config.validate_features()
    assert config.camera_keys == [
        "observation.images.cam_right_wrist",
        "observation.images.cam_high",
        "observation.images.cam_left_wrist",
    ]
    assert "observation.state" in config.input_features

    config = tiny_config(cameras=("top", "left_wrist"))
    config.cameras = ["cam_high"]
    with pytest.raises(
        ValueError, match=r"\['cam_high'\] not among the input cameras \['top', 'left_wrist'\]"
    ):
        config.validate_features()


@pytest.mark.parametrize("base", ["pi0", "pi05"])
def test_processors_are_the_bases_steps_one_for_one_with_the_configured_tokenizer(monkeypatch, base):
    """ReconVLA lists its base's processor steps itself (the base's maker downloads PaliGemma's tokenizer):
    same steps, same order, same settings, the tokenizer aside, which must be ours with the base's tokenizer
    settings. pi05's list differs from pi0's (the state goes into the prompt after normalisation)."""
    import importlib

    from lerobot.processor import ProcessorStep

    from lerobot_policy_reconvla.processor_reconvla import ReconVLATokenizerProcessorStep

    class TokenizerSettings(
        ProcessorStep
    ):  # stands in for the base's tokenizer step, which fetches PaliGemma's
        def __init__(self, **settings):
            self.settings = settings

        def __call__(self, transition):
            return transition

        def transform_features(self, features):
            return features

    base_processor = importlib.import_module(f"lerobot.policies.{base}.processor_{base}")
    monkeypatch.setattr(base_processor, "TokenizerProcessorStep", TokenizerSettings)
    config = tiny_config(config_class=BASES[base][3], use_relative_actions=True)
    base_pipelines = getattr(base_processor, f"make_{base}_pre_post_processors")(config)
    ours = make_pre_post_processors(config)  # LeRobot's factory finds ours by the config's type
    for theirs, mine in zip(base_pipelines, ours, strict=True):
        assert len(theirs.steps) == len(mine.steps)
        for their_step, my_step in zip(theirs.steps, mine.steps, strict=True):
            if isinstance(their_step, TokenizerSettings):
                assert isinstance(my_step, ReconVLATokenizerProcessorStep)
                expected = {**their_step.settings, "tokenizer_name": config.resolved_tokenizer_name}
                assert {k: getattr(my_step, k) for k in expected} == expected
                continue
            assert type(my_step) is type(their_step)
            if hasattr(their_step, "get_config"):
                assert my_step.get_config() == their_step.get_config(), type(my_step).__name__


def test_a_refused_setting_is_named_where_lerobot_trains_parser_hides_the_reason(caplog):
    # draccus turns a ValueError raised while building the config into "Couldn't instantiate class ...";
    # the reason must still reach the command line.
    import logging
    from dataclasses import dataclass

    import draccus
    from lerobot.configs.policies import PreTrainedConfig

    @dataclass
    class Command:  # the shape of lerobot-train's config as far as the policy goes
        policy: PreTrainedConfig | None = None

    flags = [
        "--policy.type=reconvla",
        "--policy.paligemma_variant=tiny",
        "--policy.action_expert_variant=tiny",
        "--policy.image_resolution=[84,84]",
        "--policy.device=cpu",
    ]
    with caplog.at_level(logging.ERROR), pytest.raises((SystemExit, draccus.utils.ParsingError)):
        draccus.parse(Command, args=flags)
    assert (
        "recon_image_size=128 must be a multiple of the image-token grid "
        "(6 = image_resolution 84 // patch 14)" in caplog.text
    )
