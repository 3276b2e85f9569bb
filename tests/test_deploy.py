"""Deployment: LeRobot's async inference (policy server + robot client), real-time chunking through
lerobot-rollout, and the Hub model card, all on a tiny ReconVLA and the simulated ALOHA."""

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

from lerobot_policy_reconvla.configuration_reconvla import ReconVLAConfig
from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy, ReconVLAPytorch
from lerobot_policy_reconvla.recon.head import ReconHead
from lerobot_policy_reconvla.recon.target import ReconTarget
from tests.fixtures import processes
from tests.fixtures.cli import run_cli, run_train
from tests.fixtures.synthetic_dataset import write_synthetic_dataset
from tests.fixtures.tiny_policy import CHUNK, TINY_CLI, raw_batch

TASK = "Insert the peg into the socket."
ALOHA_CAMERAS = ("cam_high", "cam_left_wrist", "cam_right_wrist")
H, W = 96, 128
RECORDER = Path(__file__).parent / "fixtures" / "robot_client_with_recorder.py"


def subprocess_env() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline", MUJOCO_GL="egl")


@pytest.fixture(scope="module")
def aloha_checkpoint(tmp_path_factory) -> Path:
    """A tiny ReconVLA trained by lerobot-train (1 step) on data with the ALOHA robots' camera names."""
    root = tmp_path_factory.mktemp("deploy_data") / "aloha_cams"
    write_synthetic_dataset(root, repo_id="local/aloha_cams", cameras=ALOHA_CAMERAS, height=H, width=W)
    run = tmp_path_factory.mktemp("deploy_train") / "run"
    run_train(
        [
            "--policy.type=reconvla",
            *TINY_CLI,
            "--dataset.repo_id=local/aloha_cams",
            f"--dataset.root={root}",
            f"--output_dir={run}",
            "--steps=1",
            "--batch_size=2",
            "--save_freq=1",
            "--num_workers=0",
            "--wandb.enable=false",
        ]
    )
    return run / "checkpoints" / "last" / "pretrained_model"


# --- async inference ----------------------------------------------------------------------------------


def test_policy_server_allow_list_holds_reconvla(tmp_path, monkeypatch):
    """The server checks `policy_type in SUPPORTED_POLICIES` against the list object of `constants`, which the
    plugin extends in place on import (the next test sends it policy instructions: accepted for reconvla,
    refused for an unlisted type)."""
    monkeypatch.chdir(tmp_path)  # the server module opens a log file under ./logs on import
    from lerobot.async_inference import constants, policy_server

    ours = ("reconvla", "reconvla_pi05")
    assert policy_server.SUPPORTED_POLICIES is constants.SUPPORTED_POLICIES
    assert all(constants.SUPPORTED_POLICIES.count(t) == 1 for t in ours)  # importing again: not twice
    from lerobot_policy_reconvla.deploy.policy_server import allow_reconvla_in_policy_server

    allow_reconvla_in_policy_server()
    assert all(constants.SUPPORTED_POLICIES.count(t) == 1 for t in ours)


class _PeerContext:
    """The part of a gRPC servicer context the server reads."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"


def test_policy_server_loads_reconvla_and_still_refuses_unlisted_types(
    policy_and_processors, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    import pickle

    from lerobot.async_inference.configs import PolicyServerConfig
    from lerobot.async_inference.helpers import RemotePolicyConfig
    from lerobot.async_inference.policy_server import PolicyServer
    from lerobot.transport import services_pb2

    policy, pre, post = policy_and_processors
    for part in (policy, pre, post):
        part.save_pretrained(tmp_path / "policy")
    server = PolicyServer(PolicyServerConfig(host="127.0.0.1"))
    server.Ready(services_pb2.Empty(), _PeerContext())

    def instructions(policy_type: str):
        spec = RemotePolicyConfig(policy_type, str(tmp_path / "policy"), {}, CHUNK, "cpu")
        return services_pb2.PolicySetup(data=pickle.dumps(spec))

    server.SendPolicyInstructions(instructions("reconvla"), _PeerContext())
    assert isinstance(server.policy, ReconVLAPolicy) and server.policy_type == "reconvla"
    with pytest.raises(ValueError, match="Policy type not_a_policy not supported"):
        server.SendPolicyInstructions(instructions("not_a_policy"), _PeerContext())


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout: float, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"process exited ({process.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


def interrupt(process: subprocess.Popen, timeout: float = 60) -> None:
    """Ctrl-C, as a user stops either process (killed on leaving its `processes.started` block if it has not
    stopped)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)


@pytest.mark.slow
def test_async_policy_server_and_robot_client_drive_aloha_sim(aloha_checkpoint, tmp_path):
    """Two real processes over 127.0.0.1: our policy server entry point (LeRobot's server) and LeRobot's
    robot client driving aloha_sim for a few seconds once action chunks flow."""
    port = free_loopback_port()
    server_log, client_log, recorded = (
        tmp_path / "server.log",
        tmp_path / "client.log",
        tmp_path / "robot.json",
    )
    # Each stopped with Ctrl-C as a user would; whatever either leaves is killed on leaving its block.
    with (
        open(server_log, "w") as server_out,
        open(client_log, "w") as client_out,
        processes.started(
            [
                sys.executable,
                "-m",
                "lerobot_policy_reconvla.deploy.policy_server",
                "--host=127.0.0.1",
                f"--port={port}",
                "--fps=10",
                "--obs_queue_timeout=1",
            ],
            cwd=tmp_path,
            stdout=server_out,
            stderr=subprocess.STDOUT,
            env=subprocess_env(),
        ) as server,
    ):
        try:
            wait_until(
                lambda: f"PolicyServer started on 127.0.0.1:{port}" in server_log.read_text(),
                120,
                server,
                "the policy server",
            )
            with processes.started(
                [
                    sys.executable,
                    str(RECORDER),
                    "--robot.type=aloha_sim",
                    "--robot.task=insertion",
                    "--robot.fps=10",
                    f"--robot.image_height={H}",
                    f"--robot.image_width={W}",
                    f"--task={TASK}",
                    f"--server_address=127.0.0.1:{port}",
                    "--policy_type=reconvla",
                    f"--pretrained_name_or_path={aloha_checkpoint}",
                    "--policy_device=cpu",
                    f"--actions_per_chunk={CHUNK}",
                    "--fps=10",
                ],
                cwd=tmp_path,
                stdout=client_out,
                stderr=subprocess.STDOUT,
                env=dict(subprocess_env(), ROBOT_RECORDER_OUT=str(recorded)),
            ) as client:
                try:
                    wait_until(
                        lambda: server_log.read_text().count("Action chunk #") >= 3,
                        300,
                        client,
                        "three chunks",
                    )
                    time.sleep(5)  # a few seconds of control with chunks flowing
                finally:
                    interrupt(client)
        finally:
            interrupt(server)

    server_text, client_text = server_log.read_text(), client_log.read_text()
    assert "Policy type: reconvla" in server_text and "not supported" not in server_text
    assert "ipv4:127.0.0.1:" in server_text  # the client connected over the loopback interface
    assert "Error in StreamActions" not in server_text
    assert "AlohaSim connected" in client_text and "Client stopped" in client_text

    # The server predicts for observations taken after the robot executed actions of earlier chunks:
    # an observation's timestep is the last action the client performed.
    timesteps = [int(t) for t in re.findall(r"Running inference for observation #(\d+)", server_text)]
    assert max(timesteps) >= CHUNK, timesteps

    record = json.loads(recorded.read_text())
    actions, states = np.array(record["actions"]), np.array(record["states"])
    assert actions.shape[0] >= CHUNK and actions.shape[1] == 14 and np.isfinite(actions).all()
    assert np.abs(states[-1] - states[0]).max() > 1e-3  # the simulated arms moved


# --- real-time chunking -------------------------------------------------------------------------------


@pytest.mark.slow
def test_rtc_rollout_drives_aloha_sim(aloha_checkpoint, tmp_path):
    root = tmp_path / "rollout_rtc"
    output = run_cli(
        "lerobot-rollout",
        [
            "--strategy.type=episodic",
            "--inference.type=rtc",
            "--inference.rtc.execution_horizon=4",
            "--inference.queue_threshold=4",
            "--robot.type=aloha_sim",
            "--robot.task=insertion",
            "--robot.fps=5",
            f"--robot.image_height={H}",
            f"--robot.image_width={W}",
            f"--policy.path={aloha_checkpoint}",
            "--fps=5",
            "--dataset.repo_id=local/rollout_rtc",
            f"--dataset.root={root}",
            f"--dataset.single_task={TASK}",
            "--dataset.fps=5",
            "--dataset.num_episodes=1",
            "--dataset.episode_time_s=8",
            "--dataset.reset_time_s=0",
            "--dataset.video=false",
            "--dataset.push_to_hub=false",
            "--display_data=false",
            "--play_sounds=false",
        ],
    )
    assert "RTC inference thread started" in output and "Rollout finished" in output
    assert "RTC inference error" not in output

    from lerobot.datasets import LeRobotDataset

    dataset = LeRobotDataset("local/rollout_rtc", root=root)
    assert dataset.num_frames >= 2
    frames = [dataset[i] for i in range(dataset.num_frames)]
    states = torch.stack([f["observation.state"] for f in frames])  # (T, 14)
    actions = torch.stack([f["action"] for f in frames])  # (T, 14)
    assert torch.isfinite(actions).all()
    assert (states[-1] - states[0]).abs().max() > 1e-3  # the simulated arms moved under RTC


def test_rtc_is_pi0_sampling_with_guidance_and_never_touches_the_head(policy_and_processors, monkeypatch):
    """What lerobot-rollout's RTC engine calls: predict_action_chunk(batch, inference_delay=...,
    prev_chunk_left_over=...). ReconVLA inherits pi0's sampling; the head and its target never run."""
    from lerobot.policies.pi0.modeling_pi0 import PI0Policy, PI0Pytorch
    from lerobot.policies.rtc.configuration_rtc import RTCConfig
    from lerobot.policies.rtc.modeling_rtc import RTCProcessor
    from lerobot.rollout.inference.rtc import supports_rtc_inference

    for name in ("sample_actions", "denoise_step", "embed_prefix", "embed_suffix"):
        assert getattr(ReconVLAPytorch, name) is getattr(PI0Pytorch, name), name
    assert ReconVLAPolicy.predict_action_chunk is PI0Policy.predict_action_chunk

    policy, pre, _ = policy_and_processors
    assert supports_rtc_inference(policy)
    # As lerobot-rollout --inference.type=rtc sets it up.
    policy.config.rtc_config = RTCConfig(execution_horizon=4)
    policy.init_rtc_processor()
    assert policy.model.rtc_processor is policy.rtc_processor

    calls = {"head": 0, "target": 0, "rtc_steps": 0}
    policy.model.recon_head.register_forward_hook(lambda *_: calls.__setitem__("head", calls["head"] + 1))
    policy.model.recon_head.dit.register_forward_hook(lambda *_: calls.__setitem__("head", calls["head"] + 1))
    original_target, original_rtc_step = ReconTarget.__call__, RTCProcessor.denoise_step

    def counting_target(self, *args, **kwargs):
        calls["target"] += 1
        return original_target(self, *args, **kwargs)

    def counting_rtc_step(self, *args, **kwargs):
        calls["rtc_steps"] += 1
        return original_rtc_step(self, *args, **kwargs)

    monkeypatch.setattr(ReconTarget, "__call__", counting_target)
    monkeypatch.setattr(RTCProcessor, "denoise_step", counting_rtc_step)
    assert isinstance(policy.model.recon_head, ReconHead)

    batch = pre(raw_batch(batch_size=1, gaze_boxes=False))
    noise = torch.randn(1, CHUNK, policy.config.max_action_dim, generator=torch.Generator().manual_seed(0))
    free = policy.predict_action_chunk(batch, noise=noise)  # (1, CHUNK, 14), first chunk: nothing to follow
    previous = torch.full((4, 14), 0.5)  # what is left of the chunk being executed, (T, A)
    delay = 2
    guided = policy.predict_action_chunk(
        batch, noise=noise, inference_delay=delay, prev_chunk_left_over=previous
    )

    steps = policy.config.num_inference_steps
    assert calls == {"head": 0, "target": 0, "rtc_steps": 2 * steps}  # every Euler step through RTC
    assert guided.shape == free.shape == (1, CHUNK, 14) and torch.isfinite(guided).all()
    # The frozen prefix (the actions that run while this chunk is computed) is pulled to the previous chunk.
    prefix_error_free = (free[0, :delay] - previous[:delay]).abs().mean()
    prefix_error_guided = (guided[0, :delay] - previous[:delay]).abs().mean()
    assert prefix_error_guided < 0.5 * prefix_error_free


# --- model card ---------------------------------------------------------------------------------------


class _OfflineHub:
    """HfApi's two calls in push_model_to_hub, answered locally: the pushed folder is kept, nothing sent."""

    pushed: ClassVar[dict[str, str]] = {}

    def __init__(self, *args, **kwargs):
        pass

    def create_repo(self, repo_id, **kwargs):
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def upload_folder(self, repo_id, folder_path, **kwargs):
        _OfflineHub.pushed = {
            p.name: p.read_text() for p in Path(folder_path).iterdir() if p.suffix in (".md", ".json")
        }
        return type("CommitInfo", (), {"repo_url": type("RepoUrl", (), {"url": f"hub/{repo_id}"})()})()


def saved_for_card(policy, cfg, directory: Path) -> Path:
    """`directory` as lerobot-train leaves a checkpoint's pretrained_model: policy and train config."""
    policy.save_pretrained(directory)
    cfg.save_pretrained(directory)
    return directory


def push_card(policy, dataset_root, repo_id, monkeypatch, tmp_path) -> ModelCard:
    """The card a push carries. LeRobot 0.6.1: its push_model_to_hub with the Hub answered locally (it asks
    the policy for its card). A LeRobot with no such hook: the card reconvla-model-card writes for the
    same checkpoint, as the user runs it after the push."""
    from lerobot.configs.default import DatasetConfig
    from lerobot.configs.train import TrainPipelineConfig
    from lerobot.datasets import LeRobotDatasetMetadata

    from lerobot_policy_reconvla.deploy.model_card import lerobot_asks_the_policy_for_its_card

    policy.config.repo_id = "user/reconvla_aloha"
    cfg = TrainPipelineConfig(
        dataset=DatasetConfig(repo_id=repo_id, root=str(dataset_root)), policy=policy.config
    )
    if lerobot_asks_the_policy_for_its_card():
        from lerobot.policies import pretrained

        monkeypatch.setattr(pretrained, "HfApi", _OfflineHub)
        policy.push_model_to_hub(cfg, dataset_meta=LeRobotDatasetMetadata(repo_id, root=dataset_root))
        text = _OfflineHub.pushed["README.md"]
    else:
        checkpoint = saved_for_card(policy, cfg, tmp_path / "pretrained_model")
        run_cli("reconvla-model-card", [f"--checkpoint={checkpoint}"])
        text = (checkpoint / "README.md").read_text()
    card = ModelCard(text)  # parses the metadata block like the Hub does (raises on an invalid one)
    assert card.content == text
    return card


def test_model_card_command_writes_the_card_of_a_saved_checkpoint(
    policy_and_processors, dataset_3cam, tmp_path
):
    from lerobot.configs.default import DatasetConfig
    from lerobot.configs.train import TrainPipelineConfig

    policy, _, _ = policy_and_processors
    cfg = TrainPipelineConfig(
        dataset=DatasetConfig(repo_id="local/synthetic_3cam", root=str(dataset_3cam)), policy=policy.config
    )
    checkpoint = saved_for_card(policy, cfg, tmp_path / "pretrained_model")
    output = run_cli("reconvla-model-card", [f"--checkpoint={checkpoint}"])
    assert f"model card: {checkpoint / 'README.md'}" in output
    card = ModelCard.load(checkpoint / "README.md")
    assert "reconvla" in card.data.tags and "local/synthetic_3cam" in card.data.datasets
    assert "ReconVLA: Reconstructive Vision-Language-Action Model" in card.text
    assert "| `top` | yes |" in card.text  # the dataset's metadata was found through the train config
    # Not a ReconVLA checkpoint: one line, nothing written.
    (tmp_path / "empty").mkdir()
    refused = run_cli("reconvla-model-card", [f"--checkpoint={tmp_path / 'empty'}"], expect_ok=False)
    assert "holds no config.json: not a saved policy" in refused


def test_model_card_from_scratch_with_gaze_boxes(policy_and_processors, dataset_3cam, monkeypatch, tmp_path):
    policy, _, _ = policy_and_processors
    card = push_card(policy, dataset_3cam, "local/synthetic_3cam", monkeypatch, tmp_path)
    data = card.data.to_dict()
    assert data["library_name"] == "lerobot" and data["license"] == "apache-2.0"
    assert {"reconvla", "lerobot", "robotics", "arxiv:2508.10333"} <= set(data["tags"])
    assert "base_model" not in data and "trained from scratch" in card.text
    assert "ReconVLA: Reconstructive Vision-Language-Action Model as Effective Robot Perceiver" in card.text
    assert "| Target | patchified pixels |" in card.text
    assert (
        "| Gaze-crop image size | 32 px |" in card.text
        and "| Loss weight (`recon_weight`) | 1.0 |" in card.text
    )
    for camera in ("top", "left_wrist", "right_wrist"):
        assert f"| `{camera}` | yes |" in card.text
    # Sim cameras: evaluated in the aloha_multicam env, with the pushed repo id.
    assert (
        "lerobot-eval --policy.path=user/reconvla_aloha --env.type=aloha_multicam --env.task=insertion"
        in card.text
    )
    assert "--robot.type=aloha " not in card.text  # the real robot names its cameras cam_*


@pytest.mark.parametrize("base", ["pi0", "pi05"])
def test_model_card_names_the_base_and_cameras_without_boxes(
    base, dataset_3cam_no_boxes, monkeypatch, tmp_path
):
    from lerobot.policies.factory import get_policy_class

    from lerobot_policy_reconvla.configuration_reconvla_pi05 import ReconVLAPi05Config
    from tests.fixtures.tiny_policy import tiny_config

    config = tiny_config(
        config_class=ReconVLAPi05Config if base == "pi05" else ReconVLAConfig,
        recon_target="vae",
        recon_vae=str(tmp_path / "vae"),
        recon_image_size=256,
        recon_weight=0.5,
        pretrained_path=f"lerobot/{base}_base",
        use_peft=True,
    )
    policy = get_policy_class(config.type)(config)
    card = push_card(policy, dataset_3cam_no_boxes, "local/synthetic_3cam_no_boxes", monkeypatch, tmp_path)
    data = card.data.to_dict()
    assert data["base_model"] == f"lerobot/{base}_base" and data["base_model_relation"] == "adapter"
    assert base in data["tags"] and data["model_name"] == config.type
    assert f"fine-tuned from `lerobot/{base}_base` with LoRA adapters" in card.text
    assert f"This one is ReconVLA on **{base}**" in card.text
    assert f"--policy.type={config.type}`" in card.text
    assert f"| Target | latents of a frozen VAE (`{tmp_path / 'vae'}`) |" in card.text
    assert (
        "| Gaze-crop image size | 256 px |" in card.text
        and "| Loss weight (`recon_weight`) | 0.5 |" in card.text
    )
    for camera in ("top", "left_wrist", "right_wrist"):
        assert f"| `{camera}` | no (whole image reconstructed) |" in card.text


def test_model_card_for_real_aloha_cameras_gives_rollout_rtc_and_async_commands(monkeypatch):
    from tests.fixtures.tiny_policy import tiny_config

    policy = ReconVLAPolicy(tiny_config(cameras=ALOHA_CAMERAS))
    validated = []
    monkeypatch.setattr("huggingface_hub.constants.is_offline_mode", lambda: False)
    monkeypatch.setattr(ModelCard, "validate", lambda self, *a, **k: validated.append(str(self)))
    card = policy.generate_model_card(
        "user/aloha_data", "reconvla", None, ["aloha"], cfg=None, dataset_meta=None
    )
    assert validated == [str(card)]  # online, the Hub checks the card before the push (as LeRobot does)
    assert "aloha" in card.data.tags
    assert "Unknown: the card was generated without the dataset's metadata." in card.text
    assert "lerobot-rollout --strategy.type=base --robot.type=aloha --robot.id=aloha_follower" in card.text
    assert "--inference.type=rtc --inference.rtc.execution_horizon=10" in card.text
    assert "python -m lerobot_policy_reconvla.deploy.policy_server --host=0.0.0.0 --port=8080" in card.text
    assert "--policy_type=reconvla --pretrained_name_or_path=<hf_user>/<policy_repo_id>" in card.text
    assert "lerobot-eval" not in card.text


def test_model_card_base_model_of_a_local_checkpoint_is_text_not_metadata(policy_and_processors, tmp_path):
    from lerobot_policy_reconvla.deploy.model_card import base_model_of

    policy, _, _ = policy_and_processors
    policy.save_pretrained(tmp_path / "local")
    policy.config.pretrained_path = tmp_path / "local"
    assert base_model_of(policy.config) == (None, str(tmp_path / "local"))
    card = policy.generate_model_card("local/x", "reconvla", None, None)
    assert "base_model" not in card.data.to_dict()
    assert f"fine-tuned from a local checkpoint (`{tmp_path / 'local'}`)" in card.text


def card_commands(card: ModelCard) -> list[list[str]]:
    """The shell commands of the card's bash blocks, continuation lines joined, split as a shell does."""
    blocks = re.findall(r"```bash\n(.*?)```", card.text, flags=re.DOTALL)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.strip() and not line.startswith("#")]


def test_model_card_commands_parse_with_lerobots_own_parsers(policy_and_processors, tmp_path, monkeypatch):
    """Every rollout / async command of a real-ALOHA card, pointed at a saved checkpoint, is accepted by
    the parser of the LeRobot entry point it names (configs only: nothing connects)."""
    import draccus
    from lerobot.async_inference.configs import PolicyServerConfig, RobotClientConfig
    from lerobot.configs import parser
    from lerobot.robots import RobotConfig
    from lerobot.rollout import RolloutConfig

    from tests.fixtures.tiny_policy import tiny_config

    aloha = RobotConfig.get_choice_class("aloha")  # the real robot's config, by its CLI name
    policy = ReconVLAPolicy(tiny_config(cameras=ALOHA_CAMERAS))
    checkpoint = tmp_path / "checkpoint"
    policy.save_pretrained(checkpoint)
    policy.config.repo_id = str(checkpoint)  # the card's commands then point at the saved checkpoint
    commands = card_commands(policy.generate_model_card("user/aloha_data", "reconvla", None, None))

    @parser.wrap()
    def parse_rollout(cfg: RolloutConfig) -> RolloutConfig:
        return cfg

    seen = []
    for command in commands:
        if command[0] == "lerobot-rollout":
            monkeypatch.setattr(sys, "argv", command)
            cfg = parse_rollout()
            assert isinstance(cfg.robot, aloha) and cfg.policy.type == "reconvla"
            assert str(cfg.policy.pretrained_path) == str(checkpoint)
            seen.append(f"rollout/{cfg.inference.type}/{cfg.strategy.type}")
        elif command[:3] == ["python", "-m", "lerobot.async_inference.robot_client"]:
            cfg = draccus.parse(RobotClientConfig, args=command[3:])
            assert cfg.policy_type == "reconvla" and cfg.pretrained_name_or_path == str(checkpoint)
            assert isinstance(cfg.robot, aloha) and cfg.actions_per_chunk == CHUNK
            seen.append("robot_client")
        elif command[:3] == ["python", "-m", "lerobot_policy_reconvla.deploy.policy_server"]:
            draccus.parse(PolicyServerConfig, args=command[3:])
            seen.append("policy_server")
    assert seen == [
        "rollout/sync/base",
        "rollout/rtc/base",
        "rollout/sync/episodic",
        "policy_server",
        "robot_client",
    ]
