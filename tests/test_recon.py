"""The reconstruction branch on its own: ReconDiT, gaze-region targets, the VAE, the schedule."""

import doctest
import math

import pytest
import torch
import torch.nn.functional as F

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
    # Zero-initialised modulation: the condition has no effect yet. The output layer is moved off its zero
    # init first, so that the output is not zero whatever the condition.
    torch.nn.init.normal_(model.output_proj.weight, std=0.05)
    before = model(x, t, cond_a)
    assert before.abs().mean() > 1e-3
    assert torch.allclose(before, model(x, t, cond_b))
    for param in model.parameters():  # stand-in for training having moved the gates
        torch.nn.init.normal_(param, std=0.05)
    out = model(x, t, cond_a)
    assert out.shape == (2, 16, 12)
    # Per-token condition: changing token 5's condition changes token 5's output the most.
    cond_c = cond_a.clone()
    cond_c[:, 5] = torch.randn(2, 20)
    change = (model(x, t, cond_c) - out).abs().mean(dim=(0, 2))
    assert change.argmax().item() == 5 and change[5] > 1e-3
    # The condition passes a LayerNorm without affine first: offset and scale of a hidden state do not matter.
    assert torch.allclose(model(x, t, cond_a * 4.0 + 3.0), out, atol=1e-5)


def test_dit_language_condition_is_required_when_configured():
    model = _tiny_dit(language_dim=8)
    with pytest.raises(ValueError, match="language_embedding"):
        model(torch.randn(1, 16, 12), torch.tensor([3]), torch.randn(1, 16, 20))
    assert model(
        torch.randn(1, 16, 12), torch.tensor([3]), torch.randn(1, 16, 20), torch.randn(1, 8)
    ).shape == (1, 16, 12)


def test_dit_saves_and_loads_as_a_diffusers_model(tmp_path):
    model = _tiny_dit()
    model.save_pretrained(tmp_path)
    loaded = ReconDiT.from_pretrained(tmp_path)
    assert loaded.config.width == 32
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_a_wide_box_is_padded_to_a_square_not_stretched():
    image = torch.zeros(1, 3, 60, 80)
    image[:, 0, 15:45, 20:60] = 1.0  # a red rectangle, 40 x 30 px, in the black image
    box = torch.tensor([[20 / 80, 15 / 60, 60 / 80, 45 / 60]])
    crop = crop_and_resize(image, box, size=16, pad_to_square=True)
    assert crop.shape == (1, 3, 16, 16)
    # The 40 px square holds the 30 px tall box in rows 2-13 (16 * 5 / 40 = 2 rows of grey above and below).
    assert torch.allclose(crop[:, 0, 3:13, 1:-1], torch.ones(1, 10, 14), atol=1e-5)  # bins inside the box
    assert crop[:, 1:, 2:14].abs().max() < 1e-5
    for band in (crop[:, :, :2], crop[:, :, 14:]):
        assert torch.allclose(band, torch.full_like(band, 0.5)), band  # grey, not the neighbouring black


def test_a_tall_box_and_a_four_by_three_whole_image_keep_their_shape():
    image = torch.zeros(1, 3, 60, 80)
    image[:, 2] = 1.0  # blue everywhere
    image[:, :, 10:50, 30:40] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]  # a red bar, 10 wide x 40 tall
    tall_box = torch.tensor([[30 / 80, 10 / 60, 40 / 80, 50 / 60]])
    tall = crop_and_resize(image, tall_box, size=16, pad_to_square=True)  # (1, 3, 16, 16)
    # The bar fills columns 6-9 of the 40 px square (16 * 15 / 40 = 6 columns of grey either side); the
    # blue around it in the image is not part of the crop (its bilinear samples touch the border bins a
    # little).
    red = torch.tensor([1.0, 0.0, 0.0])[None, :, None, None]
    assert torch.allclose(tall[:, :, 1:-1, 7:9], red.expand(1, 3, 14, 2), atol=1e-5)
    assert torch.allclose(tall[:, :, :, 6:10], red.expand(1, 3, 16, 4), atol=0.06)
    for band in (tall[:, :, :, :6], tall[:, :, :, 10:]):
        assert torch.allclose(band, torch.full_like(band, 0.5)), band

    # No box: the 80 x 60 image, centred in an 80 px square (16 * 10 / 80 = 2 grey rows above and below).
    whole = crop_and_resize(image, torch.tensor([[0.0, 0.0, 1.0, 1.0]]), size=16, pad_to_square=True)
    assert torch.allclose(whole[:, :, :2], torch.full_like(whole[:, :, :2], 0.5))
    assert torch.allclose(whole[:, :, 14:], torch.full_like(whole[:, :, 14:], 0.5))
    assert torch.allclose(whole[:, 2, 3:13, 0], torch.ones(10))  # the image's blue left edge, unsqueezed

    # Without padding (the default) the same bar is stretched over the whole target.
    stretched = crop_and_resize(image, tall_box, size=16)
    assert torch.allclose(stretched[:, :, 1:-1, 1:-1], red.expand(1, 3, 14, 14), atol=1e-5)
    target = ReconTarget("pixels", 16, 4, pad_to_square=True)
    assert torch.allclose(target.tokens_to_images(target([image], [tall_box])), tall, atol=1e-6)


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
    # The cosine schedule in closed form (Nichol & Dhariwal, s = 0.008, betas capped at 0.999), not
    # through the scheduler under test: x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps.
    steps = torch.arange(1001, dtype=torch.float64) / 1000
    alpha_bar = torch.cos((steps + 0.008) / 1.008 * math.pi / 2) ** 2  # (1001,)
    betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)  # (1000,)
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    torch.testing.assert_close(scheduler.alphas_cumprod.double(), alphas_cumprod, atol=1e-6, rtol=0)
    a_t = alphas_cumprod[timesteps].float()[:, None, None]  # ((B K R), 1, 1)
    x_t = a_t.sqrt() * x0 + (1 - a_t).sqrt() * noise
    eps_hat = recon.dit(x_t, timesteps, cond.repeat_interleave(4, dim=0))
    expected = (eps_hat - noise).pow(2).mean(dim=(1, 2)).reshape(2, 3 * 4).mean(dim=1)  # (B,)
    torch.testing.assert_close(fixed, expected)
    assert torch.equal(fixed, recon(cond, clean, 3, noise=noise, timesteps=timesteps))
    sampled = recon.sample(cond, num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    assert sampled.shape == (6, 16, 12) and torch.isfinite(sampled).all()


# --- The official target layout: p x p latents of a 16-channel VAE per token, shift and scale ---------

SHIFT, SCALE = 0.3, 0.5  # FLUX.1's VAE: 0.1159, 0.3611; values far from 0 and 1 so a slip shows


def _sixteen_channel_vae(tmp_path):
    """A FLUX.1-like VAE (16 latent channels, shift_factor set, no quant convs) inside a repo's `vae/`."""
    repo = tmp_path / "repo"
    save_tiny_vae(
        repo / "vae",
        latent_channels=16,
        shift_factor=SHIFT,
        scaling_factor=SCALE,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    return repo


@pytest.mark.parametrize(("patch", "subfolder"), [(1, None), (2, "vae")])
def test_vae_tokens_hold_each_cells_latents_and_decode_back(tmp_path, patch, subfolder):
    repo = _sixteen_channel_vae(tmp_path)
    path = str(repo / "vae") if subfolder is None else str(repo)
    vae = load_frozen_vae(path, latent_channels=16, downsample=8, subfolder=subfolder)
    grid = 4
    image_size = 8 * grid * patch  # latents: (grid * patch)^2
    target = ReconTarget(
        "vae", image_size, grid, vae_loader=lambda: vae, vae_latent_channels=16, sample_posterior=False
    )
    assert (target.patch, target.token_channels) == (patch, 16 * patch**2)
    image = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    box = torch.tensor([[0.1, 0.2, 0.7, 0.9]] * 2)
    tokens = target([image], [box])
    assert tokens.shape == (2, grid * grid, 16 * patch**2) and tokens.dtype == torch.float32

    # The VAE on its own: the crop in [-1, 1], its latents, its own round trip.
    crop = crop_and_resize(image, box, image_size) * 2.0 - 1.0  # (2, 3, S, S)
    with torch.no_grad():
        raw = vae.encode(crop).latent_dist.mode()  # (2, 16, grid * p, grid * p)
        vae_round_trip = ((vae.decode(raw).sample + 1.0) / 2.0).clamp(0, 1)
    normalised = (raw - SHIFT) * SCALE  # once: not twice, not scale-only, not shift-only
    for i in range(grid * grid):
        row, col = divmod(i, grid)
        cell = normalised[
            :, :, row * patch : (row + 1) * patch, col * patch : (col + 1) * patch
        ]  # (2, 16, p, p)
        assert torch.allclose(tokens[:, i], cell.reshape(2, -1), atol=1e-6), i
    assert not torch.allclose(tokens, target.grid_to_tokens(raw * SCALE), atol=1e-3)

    # tokens -> images undoes scale and shift once and decodes: the VAE's own reconstruction of the crop.
    images = target.tokens_to_images(tokens)
    assert images.shape == (2, 3, image_size, image_size)
    assert torch.allclose(images, vae_round_trip, atol=1e-5)
    crop01 = (crop + 1.0) / 2.0
    assert (images - crop01).abs().mean().item() == pytest.approx(
        (vae_round_trip - crop01).abs().mean().item()
    )

    # Targets do not change inside a caller's bf16 autocast region: the VAE runs in fp32 regardless.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(target([image], [box]), tokens)


def test_vae_targets_sample_the_posterior_by_default(tmp_path):
    vae = load_frozen_vae(str(_sixteen_channel_vae(tmp_path)), 16, 8, subfolder="vae")
    target = ReconTarget("vae", 32, 4, vae_loader=lambda: vae, vae_latent_channels=16)
    assert target.sample_posterior
    image, box = torch.rand(1, 3, 32, 32), torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    tokens = target([image], [box], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        posterior = vae.encode(crop_and_resize(image, box, 32) * 2.0 - 1.0).latent_dist
    sampled = posterior.sample(torch.Generator().manual_seed(1))
    assert torch.allclose(tokens, target.grid_to_tokens((sampled - SHIFT) * SCALE), atol=1e-6)
    assert not torch.allclose(tokens, target.grid_to_tokens((posterior.mode() - SHIFT) * SCALE), atol=1e-3)


def test_bad_target_sizes_and_layouts_are_clear_errors(tmp_path):
    with pytest.raises(
        ValueError, match=r"recon_image_size=100 .*8x downsampling.*4x4 .*use e\.g\. 96 or 128"
    ):
        ReconTarget("vae", 100, 4, vae_loader=lambda: None)
    with pytest.raises(
        ValueError, match=r"recon_image_size=16 .* 4x4 image-token grid \(= 32\).*use e\.g\. 32$"
    ):
        ReconTarget("vae", 16, 4, vae_loader=lambda: None)
    with pytest.raises(ValueError, match="recon_image_size=0; expected >= 1"):
        ReconTarget("pixels", 0, 4)
    with pytest.raises(ValueError, match="recon_vae_latent_channels=0"):
        ReconTarget("vae", 32, 4, vae_loader=lambda: None, vae_latent_channels=0)
    # A loader that returns a VAE of another layout is caught before any target is made.
    vae = load_frozen_vae(str(_sixteen_channel_vae(tmp_path)), 16, 8, subfolder="vae")
    target = ReconTarget("vae", 32, 4, vae_loader=lambda: vae, vae_latent_channels=4)
    with pytest.raises(
        ValueError, match="16 latent channels and downsamples 8x, but recon_vae_latent_channels=4"
    ):
        target([torch.rand(1, 3, 32, 32)], [torch.tensor([[0.0, 0.0, 1.0, 1.0]])])
    with pytest.raises(OSError, match=r"recon_vae=.*recon_vae_subfolder='decoder'"):
        load_frozen_vae(str(tmp_path / "repo"), 16, 8, subfolder="decoder")
    with pytest.raises(ValueError, match="recon_dit_width=30 must be a positive multiple of 4"):
        ReconDiT(in_channels=12, cond_dim=20, grid_size=4, width=30, num_heads=3)
    with pytest.raises(
        ValueError, match=r"recon_head_dtype='float16'; expected one of \['bfloat16', 'float32'\]"
    ):
        ReconHead(
            _tiny_dit(), ReconTarget("pixels", 8, 4), make_train_scheduler(10), 1, compute_dtype="float16"
        )


# --- ReconDiT as the official head: condition path and init ----------------------------------------


def test_dit_condition_is_time_plus_linear_of_silu_of_parameter_free_layernorm():
    torch.manual_seed(0)
    model = _tiny_dit()
    for param in model.parameters():  # any trained state, not just the initial one
        torch.nn.init.normal_(param, std=0.1)
    hidden = torch.randn(2, 16, 20) * 7.0 + 2.0  # an un-normed layer's scale
    timesteps = torch.tensor([3, 3, 700, 700])  # two noise levels per condition
    assert list(model.cond_norm.parameters()) == []  # LayerNorm without affine

    # DiT's timestep features: [cos, sin] of t * 10000^(-k/128), k < 128, then the embedding MLP.
    frequencies = torch.exp(-math.log(10000) * torch.arange(128) / 128)
    angles = timesteps[:, None].float() * frequencies[None]
    t_emb = model.time_embed(torch.cat([angles.cos(), angles.sin()], dim=-1))  # (4, D)
    per_token = F.linear(F.silu(F.layer_norm(hidden, (20,))), model.cond_proj.weight, model.cond_proj.bias)
    reference = per_token.repeat_interleave(2, dim=0) + t_emb[:, None]  # (4, T, D)

    seen = []
    model.blocks[0].register_forward_pre_hook(lambda _, args: seen.append(args[1]))
    model(torch.randn(4, 16, 12), timesteps, hidden, cond_repeats=2)
    assert torch.allclose(seen[0], reference, atol=1e-5)


def _assert_xavier_uniform(weight, fan_in: int, fan_out: int):
    """Drawn from U(-a, a), a = sqrt(6 / (fan_in + fan_out)): inside the bound, reaching close to it, with
    its standard deviation a / sqrt(3) (PyTorch's default, U(+-1/sqrt(fan_in)), fails both for these
    layers)."""
    bound = math.sqrt(6 / (fan_in + fan_out))
    values = weight.detach().flatten()
    assert values.abs().max() <= bound
    assert values.abs().max() > 0.95 * bound
    expected_std = bound / math.sqrt(3)
    standard_error = expected_std / math.sqrt(2 * values.numel())  # of a sample std, near enough for U
    assert abs(values.std().item() - expected_std) < 4 * standard_error, (values.std().item(), expected_std)


def test_dit_and_head_start_at_exactly_zero_with_the_official_init():
    torch.manual_seed(0)
    model = _tiny_dit()
    zeroed = [model.output_proj, model.ada_ln_out[-1], *(block.ada_ln[-1] for block in model.blocks)]
    assert all(not linear.weight.any() and not linear.bias.any() for linear in zeroed)
    # xavier elsewhere (q, k, v drawn as timm's fused (3D, D) matrix), N(0, 0.02) for the condition.
    assert not model.input_proj.bias.any()
    _assert_xavier_uniform(model.input_proj.weight, fan_in=12, fan_out=32)
    _assert_xavier_uniform(model.blocks[0].attn.to_q.weight, fan_in=32, fan_out=3 * 32)
    assert 0.015 < model.cond_proj.weight.std().item() < 0.025

    cond = torch.randn(2 * 3, 16, 20, requires_grad=True)
    assert torch.equal(
        model(torch.randn(6, 16, 12), torch.tensor([1, 5, 9, 50, 500, 999]), cond), torch.zeros(6, 16, 12)
    )
    # So the first loss is the noise's own MSE and no gradient reaches the condition (the backbone).
    head = ReconHead(model, ReconTarget("pixels", 8, 4), make_train_scheduler(1000), timestep_repeats=4)
    noise = torch.randn(2 * 3 * 4, 16, 12)
    losses = head(cond, torch.randn(6, 16, 12), 3, noise=noise, timesteps=torch.randint(0, 1000, (24,)))
    assert torch.allclose(losses, noise.pow(2).mean(dim=(1, 2)).reshape(2, 12).mean(1))
    losses.sum().backward()
    assert not cond.grad.any()


# --- Head precision ---------------------------------------------------------------------------------


def test_head_computes_in_fp32_by_default_even_inside_bf16_autocast_and_in_bf16_on_request():
    torch.manual_seed(0)
    model = _tiny_dit()
    for param in model.parameters():
        torch.nn.init.normal_(param, std=0.05)
    seen = []
    model.output_proj.register_forward_hook(lambda _, __, out: seen.append(out.dtype))
    cond, clean = torch.randn(2 * 3, 16, 20), torch.randn(2 * 3, 16, 12)
    fixed = {"noise": torch.randn(24, 16, 12), "timesteps": torch.randint(0, 1000, (24,))}
    fp32 = ReconHead(model, ReconTarget("pixels", 8, 4), make_train_scheduler(1000), timestep_repeats=4)
    plain = fp32(cond, clean, 3, **fixed)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside_autocast = fp32(cond, clean, 3, **fixed)
    assert seen == [torch.float32, torch.float32]
    assert torch.equal(inside_autocast, plain)

    bf16 = ReconHead(
        model, ReconTarget("pixels", 8, 4), make_train_scheduler(1000), 4, compute_dtype=torch.bfloat16
    )
    mixed = bf16(cond, clean, 3, **fixed)
    assert seen[-1] == torch.bfloat16 and next(model.parameters()).dtype == torch.float32
    assert mixed.dtype == torch.float32  # the loss is reduced in fp32
    assert torch.allclose(mixed, plain, rtol=0.05) and not torch.equal(mixed, plain)
    assert bf16.sample(cond, num_inference_steps=2).dtype == torch.float32
