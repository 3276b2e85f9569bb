"""The random shift moves each gaze box with its pixels (training/augment.py)."""

import pytest
import torch

from lerobot_policy_reconvla.gaze_box import ABSENT_BOX, is_present
from lerobot_policy_reconvla.training.augment import random_shift, shift_boxes, shift_images

HEIGHT, WIDTH, PAD = 24, 32, 4


def square_image(x0: int, y0: int, x1: int, y1: int) -> torch.Tensor:
    """(1, 3, H, W) grey image with a red square over pixels [x0, x1) x [y0, y1)."""
    image = torch.full((1, 3, HEIGHT, WIDTH), 0.5)
    image[:, :, y0:y1, x0:x1] = torch.tensor([1.0, 0.0, 0.0])[None, :, None, None]
    return image


def red_box(image: torch.Tensor) -> list[float] | None:
    """Normalised [x0, y0, x1, y1] around the red pixels of a (3, H, W) image, None if none is red."""
    red = (image[0] > 0.9) & (image[1] < 0.1)
    if not red.any():
        return None
    ys, xs = torch.nonzero(red, as_tuple=True)
    return [
        xs.min().item() / WIDTH,
        ys.min().item() / HEIGHT,
        (xs.max().item() + 1) / WIDTH,
        (ys.max().item() + 1) / HEIGHT,
    ]


@pytest.mark.parametrize(
    "corners", [(12, 8, 18, 14), (0, 0, 5, 4), (28, 20, 32, 24)], ids=["middle", "corner", "edge"]
)
def test_box_stays_around_the_square_at_every_shift(corners):
    image = square_image(*corners)
    box = torch.tensor([red_box(image[0])])
    for dx in range(-PAD, PAD + 1):
        for dy in range(-PAD, PAD + 1):
            offsets = torch.tensor([[dx, dy]])
            shifted = shift_images(image, offsets, PAD)[0]
            moved = shift_boxes(box, offsets, HEIGHT, WIDTH)[0]
            expected = red_box(shifted)
            # Edge replication smears a square touching the border along it: the box then covers only
            # the square's own pixels that stayed in view, so compare against the unsmeared square.
            x0, y0, x1, y1 = corners
            own = [
                min(max(x0 + dx, 0), WIDTH),
                min(max(y0 + dy, 0), HEIGHT),
                min(max(x1 + dx, 0), WIDTH),
                min(max(y1 + dy, 0), HEIGHT),
            ]
            if own[2] <= own[0] or own[3] <= own[1]:  # the square left the view: so did its box
                assert moved.tolist() == ABSENT_BOX.tolist(), (dx, dy)
                continue
            assert moved.tolist() == pytest.approx(
                [own[0] / WIDTH, own[1] / HEIGHT, own[2] / WIDTH, own[3] / HEIGHT]
            )
            assert expected is not None
            # Every pixel inside the moved box is red: the box frames the square, not the background.
            px = (moved * torch.tensor([WIDTH, HEIGHT, WIDTH, HEIGHT])).round().long().tolist()
            inside = shifted[:, px[1] : px[3], px[0] : px[2]]
            assert (inside[0] > 0.9).all() and (inside[1] < 0.1).all(), (dx, dy)
            if x0 > PAD and y0 > PAD and x1 < WIDTH - PAD and y1 < HEIGHT - PAD:
                assert moved.tolist() == pytest.approx(expected), (dx, dy)


def test_absent_stays_absent_and_a_box_moved_out_of_view_becomes_absent():
    boxes = torch.tensor([ABSENT_BOX.tolist(), [0.0, 0.0, 2 / WIDTH, 1.0]])
    moved = shift_boxes(boxes, torch.tensor([[3, 0], [-3, 0]]), HEIGHT, WIDTH)
    assert not is_present(moved).any()
    assert moved.tolist() == [ABSENT_BOX.tolist()] * 2


def test_random_shift_moves_each_sample_and_camera_with_its_own_box():
    corners = [(10, 6, 16, 12), (3, 10, 9, 20), (20, 2, 30, 9)]
    images = [torch.cat([square_image(*c) for c in corners]) for _ in range(2)]  # 2 cameras x (3, C, H, W)
    boxes = [torch.tensor([red_box(image) for image in camera]) for camera in images]
    generator = torch.Generator().manual_seed(0)
    shifted_images, shifted_boxes = random_shift(images, [boxes[0], None], PAD, generator=generator)
    assert shifted_boxes[1] is None  # a camera without boxes keeps none
    for image, box in zip(shifted_images[0], shifted_boxes[0], strict=True):
        assert box.tolist() == pytest.approx(red_box(image))
    moved = [red_box(image) for image in shifted_images[0]] + [red_box(image) for image in shifted_images[1]]
    original = [red_box(image) for image in images[0]] * 2
    assert moved != original  # the draw moved something (seeded, so this cannot flake)


def test_no_pad_changes_nothing_and_a_negative_pad_is_refused():
    images, boxes = [square_image(1, 1, 4, 4)], [torch.tensor([[0.0, 0.0, 0.5, 0.5]])]
    assert random_shift(images, boxes, 0) == (images, boxes)
    with pytest.raises(ValueError, match="pad=-1"):
        random_shift(images, boxes, -1)


def test_policy_shifts_in_training_only_and_its_targets_follow_the_objects(
    policy_and_processors, monkeypatch
):
    """`image_shift_pixels`: training forwards draw a shift (the loss changes with the draw, all else fixed),
    evaluation forwards do not, and the gaze crop of a shifted camera is the crop of the unshifted one."""
    from tests.fixtures.tiny_policy import CHUNK, TOKEN_GRID, raw_batch

    policy, pre, _ = policy_and_processors
    batch = pre(raw_batch())
    num_targets = 2 * len(policy.config.camera_keys) * policy.config.recon_timestep_repeats
    fixed = dict(
        noise=torch.zeros(2, CHUNK, policy.config.max_action_dim),
        time=torch.full((2,), 0.5),
        recon_noise=torch.zeros(num_targets, TOKEN_GRID**2, 48),
        recon_timesteps=torch.full((num_targets,), 500),
    )
    policy.train()
    unshifted = [policy.forward(batch, **fixed)[0] for _ in range(2)]
    assert torch.equal(*unshifted)  # nothing else is random here
    monkeypatch.setattr(policy.config, "image_shift_pixels", 4)
    torch.manual_seed(0)
    shifted = [policy.forward(batch, **fixed)[0] for _ in range(2)]
    assert not torch.equal(*shifted) and not torch.equal(shifted[0], unshifted[0])

    policy.eval()
    with_shift = policy.forward(batch)[0]
    monkeypatch.setattr(policy.config, "image_shift_pixels", 0)
    assert torch.equal(with_shift, policy.forward(batch)[0])  # evaluation never shifts
    policy.train()

    # The boxes (0.2-0.6 of the width, 0.25-0.75 of the height) stay inside the image at any 4-pixel shift,
    # so each crop samples the same content at the same place relative to it.
    monkeypatch.setattr(policy.config, "image_shift_pixels", 4)
    boxes = policy.gaze_boxes(batch)  # (B, K, 4)
    moved_batch, moved_boxes = policy._shifted(batch, boxes)
    assert not torch.equal(moved_boxes, boxes)
    torch.testing.assert_close(
        policy.recon_targets(moved_batch, moved_boxes), policy.recon_targets(batch, boxes)
    )


def test_shift_with_a_latent_cache_is_refused_by_name():
    from tests.fixtures.tiny_policy import tiny_config

    with pytest.raises(ValueError, match="image_shift_pixels=4 with recon_latent_cache"):
        tiny_config(image_shift_pixels=4, recon_target="vae", recon_latent_cache="cache")
    with pytest.raises(ValueError, match="image_shift_pixels=-1"):
        tiny_config(image_shift_pixels=-1)
