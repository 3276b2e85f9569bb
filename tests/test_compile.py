"""torch.compile of the tiny ReconVLA on the CPU, as `--policy.compile_model=true` applies it (pi0's own
compile of the core model's `forward` and `sample_actions`, with the hidden-state capture inside).

Dynamo's findings are compared with the stock base's on the same weights, for pi0 and pi05
(benchmarks/pi0_pair.py turns a ReconVLA policy into LeRobot's classes of its base): ReconVLA may not add a
graph break of its own.
"""

from collections import Counter

import pytest
import torch
import torch._dynamo
from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

from benchmarks.pi0_pair import make_stock_twin
from lerobot_policy_reconvla.modeling_reconvla import ReconVLAPolicy
from lerobot_policy_reconvla.processor_reconvla import make_reconvla_pre_post_processors
from tests.fixtures.tiny_policy import CHUNK, fixed_training_noise, perturb_head_, raw_batch, tiny_config

MAX_ACTION_DIM = 32  # pi0 pads actions to this width


def _core_inputs(policy, batch: dict, seed: int = 0) -> tuple[tuple, tuple]:
    """The core model's training-forward arguments with fixed flow-matching noise and time, and its
    inference arguments (`sample_actions`: the same without the actions, noise and time)."""
    images, img_masks = policy._preprocess_images(batch)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(2, CHUNK, MAX_ACTION_DIM, generator=generator)  # (B, chunk, max_action_dim)
    time = torch.rand(2, generator=generator) * 0.9 + 0.05  # (B,)
    inputs = policy._base_model_inputs(
        batch,
        images,
        img_masks,
        batch[OBS_LANGUAGE_TOKENS],
        batch[OBS_LANGUAGE_ATTENTION_MASK],
        policy.prepare_action(batch),
    )  # pi0: images, masks, tokens, token masks, state, actions; pi05: the same without the state
    return (*inputs, noise, time), inputs[:-1]


def _recon_inputs(policy, batch: dict) -> dict:
    return {"recon_targets": policy.recon_targets(batch, policy.gaze_boxes(batch))}


def _break_reasons(function, *args, **kwargs) -> Counter:
    """Dynamo's graph breaks in one call, counted by kind (a reason's first line, not its call site)."""
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(function)(*args, **kwargs)
    return Counter(str(reason.reason).strip().splitlines()[0] for reason in explanation.break_reasons)


@pytest.mark.slow
@pytest.mark.parametrize("base", ["pi0", "pi05"])
def test_dynamo_finds_no_graph_break_that_the_base_lacks_and_the_cache_holds_over_steps(base):
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    from lerobot_policy_reconvla.configuration_reconvla_pi05 import ReconVLAPi05Config

    torch.manual_seed(0)
    config = tiny_config(**({"config_class": ReconVLAPi05Config} if base == "pi05" else {}))
    recon = get_policy_class(config.type)(config).train()
    stock = make_stock_twin(recon).train()
    preprocessor = make_pre_post_processors(config)[0]
    batch = preprocessor(raw_batch())
    args, inference = _core_inputs(recon, batch)

    stock_breaks = _break_reasons(stock.model.forward, *args)
    recon_breaks = _break_reasons(recon.model.forward, *args, **_recon_inputs(recon, batch))
    assert not recon_breaks - stock_breaks, (
        f"graph breaks {base} does not have: {recon_breaks - stock_breaks}"
    )
    recon_breaks = _break_reasons(recon.model.sample_actions, *inference)
    assert not recon_breaks - _break_reasons(stock.model.sample_actions, *inference), recon_breaks

    # Training steps (new batch values, new noise, updated weights) reuse the graphs of the first.
    torch._dynamo.reset()
    compiled = torch.compile(recon.model.forward, backend="eager")
    optimizer = torch.optim.SGD(recon.parameters(), lr=1e-3)
    graphs = []
    for step in range(3):
        step_batch = preprocessor(raw_batch(seed=step))
        step_args, _ = _core_inputs(recon, step_batch, seed=step)
        action_losses, recon_losses = compiled(*step_args, **_recon_inputs(recon, step_batch))
        (action_losses.mean() + recon_losses.mean()).backward()
        optimizer.step()
        optimizer.zero_grad()
        graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    assert graphs[0] > 0 and graphs[1] == graphs[0] and graphs[2] == graphs[0], graphs


def test_compile_model_trains_as_eager_does(tiny_vae_dir):
    """`compile_model=true` (inductor) against the same weights in eager mode, with the VAE target: its
    targets are made before the compiled forward (dynamo could neither load the VAE lazily nor draw its
    posterior with symbolic shapes). One training step's loss terms and every gradient agree; at another
    batch size (dynamic shapes) the loss terms agree again. One compiled model for both: inductor's CPU
    compile is the costly part."""
    vae_target = dict(recon_target="vae", recon_vae=str(tiny_vae_dir), recon_image_size=128)
    torch.manual_seed(0)
    eager = ReconVLAPolicy(tiny_config(**vae_target)).train()
    compiled = ReconVLAPolicy(tiny_config(compile_model=True, compile_mode="default", **vae_target)).train()
    compiled.load_state_dict(eager.state_dict())
    for policy in (
        eager,
        compiled,
    ):  # the same weights, off the head's zero init: its gradient reaches the backbone
        perturb_head_(policy)
    preprocessor = make_reconvla_pre_post_processors(tiny_config())[0]
    for batch_size in (2, 3):
        batch = preprocessor(raw_batch(batch_size=batch_size))
        noise = fixed_training_noise(batch_size=batch_size, max_action_dim=MAX_ACTION_DIM)
        repeats = noise["recon_noise"].shape[0]  # an 8 x 8 grid of 2 x 2 4-channel latents per token
        noise |= dict(recon_noise=torch.randn(repeats, 64, 16, generator=torch.Generator().manual_seed(2)))
        losses = {}
        for name, policy in (("eager", eager), ("compiled", compiled)):
            policy.zero_grad()
            torch.manual_seed(5)  # the posterior sample, drawn in eager code by both
            loss, losses[name] = policy.forward(batch, **noise)
            if batch_size == 2:
                loss.backward()
        assert losses["compiled"]["recon_loss"] > 0
        for term in ("action_loss", "recon_loss", "loss"):
            assert losses["compiled"][term] == pytest.approx(losses["eager"][term], rel=1e-4), (
                batch_size,
                term,
            )
        if batch_size == 2:
            compiled_grads = dict(compiled.named_parameters())
            for name, parameter in eager.named_parameters():
                if parameter.grad is None:
                    assert compiled_grads[name].grad is None, name
                    continue
                torch.testing.assert_close(
                    compiled_grads[name].grad, parameter.grad, atol=1e-5, rtol=1e-3, msg=name
                )
