"""Policy presets load through LeRobot's own config parser (`--config_path`)."""

import os
import shutil
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from lerobot.configs.train import TrainPipelineConfig

from lerobot_policy_reconvla.configuration_reconvla import ReconVLAConfig
from lerobot_policy_reconvla.tools.presets import CONFIGS_DIR, available_presets, main, preset_path
from tests.fixtures import processes
from tests.fixtures.cli import run_cli

REPO = Path(__file__).resolve().parents[1]


def load_preset(name: str, *overrides: str) -> TrainPipelineConfig:
    # What `lerobot-train --config_path=<preset> ...` does (lerobot.configs.parser.wrap).
    return TrainPipelineConfig.from_pretrained(
        str(preset_path(name)), cli_args=["--dataset.repo_id=local/any", *overrides]
    )


def test_tiny_preset_is_the_cpu_variant():
    policy = load_preset("reconvla_tiny").policy
    assert isinstance(policy, ReconVLAConfig)
    assert (policy.paligemma_variant, policy.action_expert_variant, policy.recon_target) == (
        "tiny",
        "tiny",
        "pixels",
    )
    assert policy.device == "cpu"


def test_aloha_preset_is_full_size_bf16_with_the_papers_recon_settings():
    policy = load_preset("reconvla_aloha", "--policy.device=cpu").policy
    assert isinstance(policy, ReconVLAConfig)
    assert (policy.paligemma_variant, policy.action_expert_variant, policy.dtype) == (
        "gemma_2b",
        "gemma_300m",
        "bfloat16",
    )
    assert (policy.recon_dit_depth, policy.recon_dit_width, policy.recon_dit_heads) == (3, 1024, 16)
    assert (policy.recon_weight, policy.recon_timestep_repeats, policy.recon_target) == (1.0, 4, "vae")


@pytest.mark.parametrize("size", ["tiny", "aloha"])
def test_pi05_presets_match_the_pi0_ones_on_the_pi05_base(size):
    """reconvla_pi05_<size> is reconvla_<size> on pi05: the same backbone sizes and recon settings."""
    from lerobot_policy_reconvla.configuration_reconvla_pi05 import ReconVLAPi05Config

    pi05 = load_preset(f"reconvla_pi05_{size}", "--policy.device=cpu").policy
    pi0 = load_preset(f"reconvla_{size}", "--policy.device=cpu").policy
    assert isinstance(pi05, ReconVLAPi05Config)
    shared = ["paligemma_variant", "action_expert_variant", "dtype", "chunk_size"]
    shared += [name for name in vars(pi0) if name.startswith("recon_")]
    assert {f: getattr(pi05, f) for f in shared} == {f: getattr(pi0, f) for f in shared}
    if size == "tiny":  # the state's 256-bin tokens join the prompt
        assert pi05.tokenizer_max_length > pi0.tokenizer_max_length


def test_cli_overrides_win_over_the_preset():
    assert load_preset("reconvla_tiny", "--policy.recon_weight=0.25").policy.recon_weight == 0.25


def test_unknown_preset_is_a_clear_error(capsys):
    assert "reconvla_tiny" in available_presets()
    with pytest.raises(
        KeyError, match=r"no preset named 'reconvla_huge'; available presets: \[.*'reconvla_aloha'"
    ):
        preset_path("reconvla_huge")
    assert main(["--name=reconvla_huge"]) == 2
    assert "available presets" in capsys.readouterr().err


@pytest.mark.slow
def test_lerobot_refuses_a_config_path_that_does_not_exist(tmp_path):
    # LeRobot itself refuses a --config_path that does not exist, before building anything.
    output = run_cli(
        "lerobot-train",
        [
            "--config_path=configs/policy/reconvla_huge.json",
            "--dataset.repo_id=local/any",
            f"--output_dir={tmp_path / 'run'}",
        ],
        expect_ok=False,
    )
    assert "reconvla_huge.json" in output
    assert not (tmp_path / "run").exists()


def test_top_level_presets_are_the_shipped_ones():
    """`configs/policy` and `configs/env` (for `--config_path=configs/...` from a checkout) are links to the
    presets shipped in the package: one copy of each file."""
    for kind in ("policy", "env"):
        top_level = REPO / "configs" / kind
        assert top_level.is_symlink(), f"{top_level} must link to {CONFIGS_DIR / kind}"
        assert top_level.resolve() == (CONFIGS_DIR / kind).resolve()
        assert sorted(p.name for p in top_level.glob("*.json")) == sorted(
            p.name for p in (CONFIGS_DIR / kind).glob("*.json")
        )
        assert any(top_level.glob("*.json")), top_level


WHEEL_CHECK = """
import sys
from pathlib import Path

from lerobot.configs.train import TrainPipelineConfig

import lerobot_policy_reconvla
from lerobot_policy_reconvla.tools.presets import available_presets, preset_path

venv = Path(sys.argv[1])
assert Path(lerobot_policy_reconvla.__file__).is_relative_to(venv), lerobot_policy_reconvla.__file__
for name, path in available_presets().items():
    assert path.is_relative_to(venv), path
    # What `lerobot-train --config_path=<preset>` does (lerobot.configs.parser.wrap).
    cfg = TrainPipelineConfig.from_pretrained(
        str(preset_path(name)), cli_args=["--dataset.repo_id=local/any", "--policy.type=reconvla"]
    )
    print(name, cfg.policy.type, cfg.env.type if cfg.env else None)
"""


@pytest.mark.slow
def test_wheel_ships_the_presets(tmp_path):
    """Build a wheel, install it into a fresh venv outside the checkout, and find and parse every preset
    there."""
    src = tmp_path / "src"  # a copy, so the build writes nothing into the checkout
    shutil.copytree(
        REPO / "lerobot_policy_reconvla",
        src / "lerobot_policy_reconvla",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    offline = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    processes.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            tmp_path / "dist",
            src,
        ],
        check=True,
        capture_output=True,
        env=offline,
        timeout=600,
    )
    (wheel,) = (tmp_path / "dist").glob("lerobot_policy_reconvla-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("lerobot_policy_reconvla/configs/")}
    assert shipped == {
        f"lerobot_policy_reconvla/configs/{p.relative_to(CONFIGS_DIR)}" for p in CONFIGS_DIR.rglob("*.json")
    }

    # A fresh venv sees this one's dependencies (a .pth line, so this checkout's editable install is not
    # activated) and gets the wheel installed by pip: nothing is downloaded.
    venv = tmp_path / "venv"
    venv_python = venv / "bin" / "python"
    processes.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=300)
    purelib = processes.run(
        [venv_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    processes.run(
        [sys.executable, "-m", "pip", "--python", venv_python, "install", "--no-deps", wheel],
        check=True,
        capture_output=True,
        env=offline,
        timeout=600,
    )

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    run = processes.run(
        [venv_python, "-c", WHEEL_CHECK, venv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(run.stdout.split()[0::3]) == sorted(available_presets())
    listed = processes.run(
        [venv_python, "-m", "lerobot_policy_reconvla.tools.presets", "--name=reconvla_tiny"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.strip()
    assert Path(listed).is_relative_to(venv) and Path(listed).name == "reconvla_tiny.json"
