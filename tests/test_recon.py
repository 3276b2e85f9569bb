"""The reconstruction branch on its own: ReconDiT, gaze-region targets, the VAE, the schedule."""

import doctest

import pytest
import torch

from lerobot_policy_reconvla.recon import dit, target
from lerobot_policy_reconvla.recon.dit import ReconDiT
from lerobot_policy_reconvla.recon.head import ReconHead, make_train_scheduler
from lerobot_policy_reconvla.recon.target import ReconTarget, crop_and_resize, load_frozen_vae
from tests.fixtures.tiny_vae import save_tiny_vae


@pytest.mark.parametrize("module", [dit, target])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def _tiny_dit(**kwargs):
    return ReconDiT(in_channels=12, cond_dim=20, grid_size=4, width=32, depth=2, num_heads=4, **kwargs)


def test_dit_starts_as_adaln_zero_and_then_uses_each_tokens_condition():
    torch.manual_seed(0)
    model = _tiny_dit()
    x, t = torch.randn(2, 16, 12), torch.tensor([10, 900])
    cond_a, cond_b = torch.randn(2, 16, 20), torch.randn(2, 16, 20)
    # Zero-initialised modulation: the condition has no effect yet.
    assert torch.allclose(model(x, t, cond_a), model(x, t, cond_b))
    for param in model.parameters():  # stand-in for training having moved the gates
        torch.nn.init.normal_(param, std=0.05)
    out = model(x, t, cond_a)
    assert out.shape == (2, 16, 12)
    # Per-token condition: changing token 5's condition changes token 5's output the most.
    cond_c = cond_a.clone()
    cond_c[:, 5] += 3.0
    change = (model(x, t, cond_c) - out).abs().mean(dim=(0, 2))
    assert change.argmax().item() == 5


def test_dit_language_condition_is_required_when_configured():
    model = _tiny_dit(language_dim=8)
    with pytest.raises(ValueError, match="language_embedding"):
        model(torch.randn(1, 16, 12), torch.tensor([3]), torch.randn(1, 16, 20))
    assert model(torch.randn(1, 16, 12), torch.tensor([3]), torch.randn(1, 16, 20), torch.randn(1, 8)).shape == (1, 16, 12)


def test_dit_saves_and_loads_as_a_diffusers_model(tmp_path):
    model = _tiny_dit()
    model.save_pretrained(tmp_path)
    loaded = ReconDiT.from_pretrained(tmp_path)
    assert loaded.config.width == 32
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_crop_and_resize_returns_the_boxed_region():
    image = torch.zeros(1, 3, 60, 80)
    image[:, 0, 15:45, 20:60] = 1.0  # a red rectangle, 40 x 30 px
    box = torch.tensor([[20 / 80, 15 / 60, 60 / 80, 45 / 60]])
    crop = crop_and_resize(image, box, size=16)
    assert crop.shape == (1, 3, 16, 16)
    # Bilinear samples in the border bins touch the black neighbours a little; the inside is exact.
    assert crop[:, 0].min() > 0.95
    assert torch.allclose(crop[:, 0, 1:-1, 1:-1], torch.ones(1, 14, 14), atol=1e-5)
    assert crop[:, 1:].abs().max() < 1e-5
    whole = crop_and_resize(image, torch.tensor([[0.0, 0.0, 1.0, 1.0]]), size=16)
    assert whole[:, 0].mean() < 0.5  # the whole image is mostly black


def test_pixel_targets_are_patchified_in_token_order():
    target = ReconTarget(mode="pixels", image_size=8, grid_size=4)
    image = torch.zeros(1, 3, 8, 8)
    image[:, :, :2, :2] = 1.0  # top-left patch only -> token 0
    tokens = target([image], [torch.tensor([[0.0, 0.0, 1.0, 1.0]])])
    assert tokens.shape == (1, 16, 3 * 2 * 2)
    assert torch.all(tokens[0, 0] == 1.0) and torch.all(tokens[0, 1:] == -1.0)
    assert torch.allclose(target.tokens_to_images(tokens), image)


def test_token_grid_must_divide_the_target():
    with pytest.raises(ValueError, match="recon_image_size"):
        ReconTarget(mode="pixels", image_size=30, grid_size=16)


def test_vae_targets_load_lazily_frozen_and_match_the_token_grid(tiny_vae_dir):
    path = str(tiny_vae_dir)
    loads = []

    def loader():
        loads.append(1)
        return load_frozen_vae(path, latent_channels=4, downsample=8)

    target = ReconTarget(mode="vae", image_size=128, grid_size=16, vae_loader=loader)
    assert loads == [] and target.token_channels == 4
    tokens = target([torch.rand(2, 3, 48, 64)], [torch.tensor([[0.1, 0.1, 0.6, 0.7]] * 2)])
    assert tokens.shape == (2, 256, 4) and not tokens.requires_grad
    target([torch.rand(1, 3, 48, 64)], [torch.tensor([[0.0, 0.0, 1.0, 1.0]])])
    assert loads == [1]  # loaded once
    assert not any(p.requires_grad for p in target.vae.parameters())
    assert target.tokens_to_images(tokens).shape == (2, 3, 128, 128)


def test_vae_that_does_not_fit_or_cannot_load_is_a_clear_error(tmp_path):
    path = save_tiny_vae(tmp_path / "vae16", latent_channels=16)
    with pytest.raises(ValueError, match="16 latent channels.*recon_vae_latent_channels=4"):
        load_frozen_vae(path, latent_channels=4, downsample=8)
    with pytest.raises(OSError, match=r"(?s)recon_vae='.*nowhere'.*recon_target=pixels"):
        load_frozen_vae(str(tmp_path / "nowhere"), latent_channels=4, downsample=8)


def test_schedule_is_ddpm_cosine_eps_and_head_loss_is_per_sample():
    scheduler = make_train_scheduler(1000)
    assert scheduler.config.beta_schedule == "squaredcos_cap_v2"
    assert scheduler.config.prediction_type == "epsilon"
    recon = ReconHead(_tiny_dit(), ReconTarget("pixels", 8, 4), scheduler, timestep_repeats=4)
    cond, clean = torch.randn(2 * 3, 16, 20), torch.randn(2 * 3, 16, 12)
    losses = recon(cond, clean, num_cameras=3)
    assert losses.shape == (2,) and torch.all(losses > 0)
    # With the noise and timesteps fixed, the loss is the MSE between the DiT's eps prediction and that
    # noise, per target (each target repeated R=4 times, in order), averaged over cameras and repeats.
    noise = torch.randn(2 * 3 * 4, 16, 12)
    timesteps = torch.randint(0, 1000, (24,), generator=torch.Generator().manual_seed(0))
    fixed = recon(cond, clean, 3, noise=noise, timesteps=timesteps)
    x0 = clean.repeat_interleave(4, dim=0)  # ((B K R), T, C)
    eps_hat = recon.dit(scheduler.add_noise(x0, noise, timesteps), timesteps, cond.repeat_interleave(4, dim=0))
    expected = (eps_hat - noise).pow(2).mean(dim=(1, 2)).reshape(2, 3 * 4).mean(dim=1)  # (B,)
    torch.testing.assert_close(fixed, expected)
    assert torch.equal(fixed, recon(cond, clean, 3, noise=noise, timesteps=timesteps))
    sampled = recon.sample(cond, num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    assert sampled.shape == (6, 16, 12) and torch.isfinite(sampled).all()
