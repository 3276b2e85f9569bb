"""Metrics of the evidence experiment, computed on saved checkpoints and held-out episodes.

- `heldout_action_error`: the policy's sampled chunk against the demonstration (fixed noise draws);
- `grounding_probe`: a ridge regression from each camera's visual hidden states (the layer the
  reconstruction head reads) to the centre of that camera's gaze box, fitted on training episodes and
  scored on held-out episodes;
- `retargets`: closed loop, the scenes run under every instruction whose every episode lifted the named cube,
  against `retarget_chance` (`above_chance_p`) and what always taking the first slot scores.
"""

import torch
from lerobot.datasets import LeRobotDataset
from lerobot.utils.constants import ACTION, OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import DataLoader, Subset

from ..gaze_box import gaze_box_key, is_valid

PROBE_GRID = 8  # visual tokens are average-pooled to at most 8 x 8 per camera before the probe
RIDGE_LAMBDAS = torch.logspace(-4, 2, 13)  # relative to the mean eigenvalue of the kernel


def evenly_spaced(count: int, limit: int) -> list[int]:
    """At most `limit` indices spread evenly over range(count).

    >>> evenly_spaced(10, 4)
    [0, 3, 6, 9]
    """
    if count <= limit:
        return list(range(count))
    return torch.linspace(0, count - 1, limit).round().long().tolist()


def box_centres(boxes: Tensor, valid: Tensor) -> Tensor:
    """(N, 4) [x0, y0, x1, y1] boxes -> (N, 2) centres, NaN where `valid` (N,) is False."""
    centre = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], dim=1)
    centre[~valid] = float("nan")
    return centre


def batches(dataset: LeRobotDataset, indices: list[int], batch_size: int):
    return DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False, num_workers=0)


@torch.no_grad()
def heldout_action_error(
    policy,
    preprocessor,
    postprocessor,
    dataset: LeRobotDataset,
    indices: list[int],
    noise: Tensor,
    batch_size: int = 16,
) -> float:
    """Mean absolute error (dataset units) of sampled chunks against the demonstrated actions.

    `dataset` must deliver action chunks (delta_timestamps); `noise` (len(indices), chunk, max_action_dim)
    is the flow-matching start of every sample, the same tensor for every arm.
    """
    policy.eval()
    total, count = 0.0, 0.0
    start = 0
    for raw in batches(dataset, indices, batch_size):
        batch = preprocessor(dict(raw))
        size = batch[ACTION].shape[0]
        chunk_noise = noise[start : start + size].to(batch[ACTION].device)
        start += size
        predicted = postprocessor(
            policy.predict_action_chunk(batch, noise=chunk_noise)
        ).cpu()  # (B, chunk, A)
        target = raw[ACTION]  # (B, chunk, A), raw units
        valid = (~raw["action_is_pad"]).float()[..., None]  # (B, chunk, 1)
        total += ((predicted - target).abs() * valid).sum().item()
        count += (valid.sum() * target.shape[-1]).item()
    return total / count


@torch.no_grad()
def camera_features(
    policy, preprocessor, dataset: LeRobotDataset, indices: list[int], batch_size: int = 16
) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
    """Per camera: visual hidden states at the head's layer (N, F) and gaze-box centres (N, 2), NaN if no
    box; and the episode index of every frame (N,), which the probe holds out whole."""
    policy.eval()
    cameras = policy.config.camera_names
    features: dict[str, list[Tensor]] = {cam: [] for cam in cameras}
    centres: dict[str, list[Tensor]] = {cam: [] for cam in cameras}
    episodes: list[Tensor] = []
    grid = policy.config.recon_token_grid
    pooled = min(grid, PROBE_GRID)
    for raw in batches(dataset, indices, batch_size):
        batch = preprocessor(dict(raw))
        images, img_masks = policy._preprocess_images(batch)  # pi0's own resize/pad, as in training
        cond, _ = policy.model.prefix_recon_condition(
            images, img_masks, batch[OBS_LANGUAGE_TOKENS], batch[OBS_LANGUAGE_ATTENTION_MASK], len(cameras)
        )  # ((B K), T, D)
        cond = cond.float().unflatten(0, (-1, len(cameras)))  # (B, K, T, D)
        for k, cam in enumerate(cameras):
            tokens = cond[:, k].transpose(1, 2).unflatten(2, (grid, grid))  # (B, D, grid, grid)
            features[cam].append(F.adaptive_avg_pool2d(tokens, pooled).flatten(1).cpu())  # (B, D * pooled^2)
            boxes = raw[gaze_box_key(cam)].float()  # (B, 4)
            centres[cam].append(box_centres(boxes, is_valid(boxes)))
        episodes.append(raw["episode_index"].reshape(-1))
    return (
        {c: torch.cat(v) for c, v in features.items()},
        {c: torch.cat(v) for c, v in centres.items()},
        torch.cat(episodes),
    )


def fit_ridge(x: Tensor, y: Tensor, groups: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:
    """Ridge regression in its dual form, the penalty chosen by leave-one-episode-out error.

    x: (N, F) features, y: (N, 2) targets, groups: (N,) episode of each frame (at least two episodes).
    Returns (x_mean, x_std, weights (F, 2), y_mean, lambda). Whole episodes are held out because
    neighbouring frames of one episode are near copies: leaving out single frames rewards a penalty small
    enough to memorise the training episodes, which then transfers badly to new ones.
    """
    x, y = x.double(), y.double()
    x_mean, x_std = x.mean(0), x.std(0).clamp_min(1e-6)
    xs = (x - x_mean) / x_std
    kernel = xs @ xs.T  # (N, N)
    scale = kernel.diagonal().mean()  # the mean eigenvalue: penalties are relative to it
    lambdas = RIDGE_LAMBDAS.double() * scale
    errors = torch.zeros(len(lambdas), dtype=torch.float64)
    for episode in groups.unique():
        held = groups == episode
        eigenvalues, eigenvectors = torch.linalg.eigh(kernel[~held][:, ~held])  # (n,), (n, n)
        y_fit_mean = y[~held].mean(0)
        projected = eigenvectors.T @ (y[~held] - y_fit_mean)  # (n, 2)
        cross = kernel[held][:, ~held] @ eigenvectors  # (n_held, n)
        for i, lam in enumerate(lambdas):
            predicted = cross @ (projected / (eigenvalues.clamp_min(0) + lam)[:, None]) + y_fit_mean
            errors[i] += (predicted - y[held]).norm(dim=1).sum()
    best_lambda = lambdas[errors.argmin()]
    y_mean = y.mean(0)
    identity = torch.eye(len(x), dtype=torch.float64)
    dual = torch.linalg.solve(kernel + best_lambda * identity, y - y_mean)  # (N, 2)
    return x_mean, x_std, xs.T @ dual, y_mean, best_lambda.item()


def probe_errors(train: tuple[dict, dict, Tensor], heldout: tuple[dict, dict, Tensor]) -> dict[str, float]:
    """Held-out error (mean distance, in image widths/heights) of each camera's box-centre probe.

    `train` and `heldout` are what `camera_features` returns: (features, centres, episodes).
    """
    (train_x, train_y, train_episodes), (test_x, test_y, _) = train, heldout
    errors = {}
    for cam in train_x:
        keep_train = ~train_y[cam].isnan().any(1)
        keep_test = ~test_y[cam].isnan().any(1)
        if train_episodes[keep_train].unique().numel() < 2 or keep_test.sum() < 1:
            errors[cam] = float("nan")  # the object is (almost) never in this camera's view
            continue
        x_mean, x_std, weights, y_mean, _ = fit_ridge(
            train_x[cam][keep_train], train_y[cam][keep_train], train_episodes[keep_train]
        )
        predicted = ((test_x[cam][keep_test].double() - x_mean) / x_std) @ weights + y_mean
        errors[cam] = (predicted - test_y[cam][keep_test].double()).norm(dim=1).mean().item()
    return errors


def constant_probe_errors(
    train_centres: dict[str, Tensor], heldout_centres: dict[str, Tensor]
) -> dict[str, float]:
    """The same error for a probe that always answers the training episodes' mean centre."""
    errors = {}
    for cam, centres in train_centres.items():
        train_kept = centres[~centres.isnan().any(1)]
        test_kept = heldout_centres[cam][~heldout_centres[cam].isnan().any(1)]
        if len(train_kept) == 0 or len(test_kept) == 0:
            errors[cam] = float("nan")
            continue
        errors[cam] = (test_kept - train_kept.mean(0)).norm(dim=1).mean().item()
    return errors


def paired_comparison(a: list[float], b: list[float], alpha: float = 0.05, power: float = 0.8) -> dict:
    """Paired comparison of `a` against `b` (one value per training seed, seeds paired).

    Returns the mean difference a - b; the p-value of the exact two-sided sign-flip permutation test of that
    mean (scipy's `permutation_test`: every assignment of signs to the paired differences), which holds for
    discrete outcomes such as success counts and gives 2 / 2^n, not 1, when every seed differs by the same
    amount; `threshold`, the smallest |mean difference| a t-test would call significant at `alpha` with this
    spread (t quantile x standard error), and `mde`, the difference it would detect with probability `power`
    (the minimum detectable effect): both t approximations, for planning; and in how many seeds `a` was lower.

    >>> c = paired_comparison([1.0, 2.0, 3.0], [0.0, 2.0, 2.0])
    >>> round(c["mean"], 3), round(c["threshold"], 3), c["lower_in"], c["n"], c["p"]
    (0.667, 1.434, 0, 3, 0.5)
    >>> paired_comparison([0.3] * 5, [0.1] * 5)["p"]  # the same difference in every seed
    0.0625
    """
    import numpy as np
    from scipy import stats

    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"a paired comparison needs two or more paired values, got {len(a)} and {len(b)}")
    differences = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)  # (n,)
    n = len(differences)
    mean = float(differences.mean())
    standard_error = float(differences.std(ddof=1)) / n**0.5
    critical = float(stats.t.ppf(1 - alpha / 2, n - 1))
    if not differences.any():
        p_value = 1.0  # no difference in any seed
    else:
        # One sample and permutation_type="samples": the sign-flip test, exact for up to 2^n <= n_resamples.
        test = stats.permutation_test(
            (differences,), np.mean, permutation_type="samples", alternative="two-sided", n_resamples=2**16
        )
        p_value = float(test.pvalue)
    return {
        "mean": mean,
        "threshold": critical * standard_error,
        "mde": (critical + float(stats.t.ppf(power, n - 1))) * standard_error,
        "p": p_value,
        "lower_in": int((differences < 0).sum()),
        "n": n,
    }


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values: a family of tests at `alpha` keeps its family-wise error at `alpha`
    when each is called significant only where its adjusted p is below `alpha`.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(p_values) - rank) * p_values[index])
        adjusted[index] = round(min(1.0, running), 12)
    return adjusted


# --- closed-loop grounding: every evaluation scene under every instruction (`--env.name_every_cube`) -------


def lifted_named(outcome: dict) -> bool:
    """An outcome-log episode lifted its named cube: success, and the named cube was the first one picked up.

    Success alone would count a policy that ignores the instruction and lifts the cubes one after another
    (under every instruction it reaches the named one in the end); asking for the first cube makes the cubes
    an episode can count for exclusive, which is what bounds `retarget_chance`.
    """
    return bool(outcome["success"]) and outcome.get("first_lifted") == outcome["target"]


def retargets(outcomes: list[dict], cubes: list[str] | tuple[str, ...]) -> dict:
    """Scenes run under every instruction whose every episode lifted the named cube (`lifted_named`).

    `outcomes`: the env's outcome-log lines (``scene_seed`` and ``target`` group them); a scene counts when
    each of `cubes` was named in it at least once (``incomplete``: scenes left out for lacking one). Returns
    {"scenes", "retargeted", "incomplete", "retarget": % of the counted scenes (NaN without any)}.

    >>> line = lambda scene, target, lifted: {"scene_seed": scene, "target": target, "success": lifted ==
    ...     target, "first_lifted": lifted}
    >>> follows = [line(0, "red", "red"), line(0, "green", "green"), line(2, "red", "red")]
    >>> retargets(follows, ("red", "green"))  # scene 2 never named green: left out
    {'scenes': 1, 'retargeted': 1, 'incomplete': 1, 'retarget': 100.0}
    >>> retargets([line(0, "red", "red"), line(0, "green", "red")], ("red", "green"))["retarget"]
    0.0
    """
    by_scene: dict = {}
    for outcome in outcomes:
        if outcome.get("scene_seed") is None or not outcome.get("target"):
            continue  # an outcome log written before scenes were logged, or a task naming no cube
        by_scene.setdefault(outcome["scene_seed"], []).append(outcome)
    complete = [eps for eps in by_scene.values() if {e["target"] for e in eps} >= set(cubes)]
    retargeted = sum(all(lifted_named(e) for e in eps) for eps in complete)
    return {
        "scenes": len(complete),
        "retargeted": retargeted,
        "incomplete": len(by_scene) - len(complete),
        "retarget": 100.0 * retargeted / len(complete) if complete else float("nan"),
    }


def retarget_chance(cubes: int) -> float:
    """The most a policy that ignores the instruction retargets, as a fraction of scenes: (1 / n)^n.

    Blind to the instruction, it goes first for cube c with the same probability q_c under every instruction
    (sum q_c <= 1), so all n episodes of a scene lift their named cube with probability at most prod q_c <=
    (1 / n)^n: a policy that picks a cube at random in each episode and never misses a grasp. One that always
    takes the same slot scores 0.

    >>> retarget_chance(2), round(retarget_chance(3), 4)
    (0.25, 0.037)
    """
    return (1.0 / cubes) ** cubes


def first_slot_floor(cubes: int) -> dict[str, float]:
    """What always taking the first slot (and never missing a grasp) scores when every scene is run under each
    of its `cubes` instructions: success and wrong object in %, retargets in % of scenes.

    >>> first_slot_floor(2)
    {'success': 50.0, 'wrong_object': 50.0, 'retarget': 0.0}
    """
    return {"success": 100.0 / cubes, "wrong_object": 100.0 * (cubes - 1) / cubes, "retarget": 0.0}


def above_chance_p(successes: int, trials: int, chance: float) -> float:
    """One-sided exact binomial p of `successes` in `trials` against a rate of `chance`. Conservative for
    every policy whose rate is at most `chance`, which is how `retarget_chance` bounds instruction-blind ones.

    >>> [round(above_chance_p(k, 25, 0.25), 4) for k in (11, 10, 0)]
    [0.0297, 0.0713, 1.0]
    """
    from scipy import stats

    return float(stats.binomtest(successes, trials, chance, alternative="greater").pvalue)
