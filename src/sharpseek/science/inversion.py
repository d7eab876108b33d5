"""GAN inversion: the latent vector whose generated image is closest to a given one.

z_hat = argmin_z |image - G(z)|^2 (SCIENCE.md, "Physical directions"; the paper's Fig. 6),
so a real active region can be shifted along physical directions and used as a query like
a generated one. The reconstruction error grows toward the limb, where projection effects
make real patches unlike anything the generator learned.

Two methods, one loss (mean squared error over the 128 x 128 model-space image):

- ``lbfgs`` (the default; issue 24): ``candidates`` random z ~ N(0, I) are generated
  without gradients (a cheap look at where the target lies), the ``starts`` nearest to the
  target become the starts, and L-BFGS (strong Wolfe line search) refines them together in
  one batch. On the demo's tiny GAN and the five shared real SHARPs it reaches a lower
  error than the Adam path in about a third of the CPU time (docs/ui.md,
  benchmarks/bench_inversion.py): the nearest-sample starts avoid the poor basins that
  some random starts fall into, and L-BFGS needs far fewer generator passes than Adam.
- ``adam``: ``starts`` random starts, ``steps`` Adam steps of learning rate ``lr`` (the
  earlier method, kept as the benchmark's reference).

The error is measured against what the dataset's own frames reach
(:func:`representation_warning`, threshold ``settings.directions.inversion_warn_relative``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from sharpseek.physics.definitions import MODEL_SIZE

__all__ = [
    "INVERSION_METHODS",
    "InversionResult",
    "invert",
    "invert_configured",
    "representation_warning",
]

INVERSION_METHODS = ("lbfgs", "adam")
#: Latent vectors generated at once when choosing among the candidates (bounds the memory
#: of that look to ~64 images).
_CANDIDATE_BATCH = 64


@dataclass(frozen=True)
class InversionResult:
    """What :func:`invert` found.

    Attributes
    ----------
    z : ndarray (latent_dim,) float32
        The best start's latent vector z_hat.
    reconstruction : ndarray (128, 128) float32
        G(z_hat), model space (b = B_r / 1000 G).
    error : float
        Mean squared error of the best start, in b^2 (multiply by 1000^2 for G^2).
    errors : ndarray (starts,)
        Final mean squared error of every start, in b^2.
    z_all : ndarray (starts, latent_dim)
        Final latent vector of every start.
    history : ndarray (evaluations,)
        Best error over the starts after each generator pass with gradients, in b^2.
    target_power : float
        Mean square of the target image, in b^2: the error of reconstructing it by zero.
    """

    z: np.ndarray
    reconstruction: np.ndarray
    error: float
    errors: np.ndarray
    z_all: np.ndarray
    history: np.ndarray
    target_power: float = float("nan")

    @property
    def rms_gauss(self) -> float:
        """Root-mean-square difference of the best reconstruction [G]."""
        return float(np.sqrt(self.error) * 1000.0)

    @property
    def relative_error(self) -> float:
        """rms(image - G(z_hat)) / rms(image), dimensionless: 0 is perfect, 1 is no better
        than an empty image (nan for an all-zero target)."""
        if not self.target_power > 0:
            return float("nan")
        return float(np.sqrt(self.error / self.target_power))


def invert(
    generator_model,
    image: np.ndarray,
    *,
    method: Literal["lbfgs", "adam"] = "lbfgs",
    starts: int = 8,
    candidates: int = 256,
    steps: int = 60,
    lr: float = 0.05,
    seed: int = 0,
    progress: bool = False,
) -> InversionResult:
    """Find z_hat = argmin_z mean (image - G(z))^2 from ``starts`` starts at once.

    Parameters
    ----------
    generator_model : :class:`~sharpseek.models.inference.GeneratorModel`
        Its ``generator`` (a torch module, (n, latent_dim) -> (n, 1, 128, 128)) is used
        with gradients; its weights are not changed.
    image : ndarray (128, 128)
        Model-space target, b = clip(B_r / 1000 G, -1, 1), finite.
    method : ``"lbfgs"`` (nearest of ``candidates`` random z, then L-BFGS) or ``"adam"``
        (random starts, Adam of learning rate ``lr``); module docstring.
    starts : int
        Latent vectors optimised together in one batch.
    candidates : int
        ``lbfgs``: random z ~ N(0, I) looked at (no gradients) to choose the starts from
        (at least ``starts``).
    steps : int
        L-BFGS iterations (about 1.25 generator passes each) or Adam steps.
    lr : float
        Adam's learning rate on z (``adam`` only).
    seed : seed of the random latent vectors.

    Returns
    -------
    InversionResult

    Raises
    ------
    ValueError
        For an image that is not (128, 128), not finite, or outside [-1, 1] (not model
        space: run it through :func:`sharpseek.data.preprocess.to_model_space` first), or an
        unknown method.
    """
    target = _check_target(image)
    if method not in INVERSION_METHODS:
        raise ValueError(f"unknown inversion method {method!r}; choose one of {INVERSION_METHODS}")
    if starts < 1 or steps < 1:
        raise ValueError(f"starts and steps must be >= 1, got {starts} and {steps}")
    generator = generator_model.generator
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    requires = [p.requires_grad for p in generator.parameters()]
    for p in generator.parameters():
        p.requires_grad_(False)  # gradients flow to z only
    gen = torch.Generator().manual_seed(seed)
    goal = torch.from_numpy(target).to(device)[None]  # (1, 128, 128)

    def per_start(z: torch.Tensor) -> torch.Tensor:  # (n, latent_dim) -> (n,) MSE [b^2]
        return ((generator(z)[:, 0] - goal) ** 2).mean(dim=(1, 2))

    bar = None
    if progress:
        bar = tqdm(total=steps, desc=f"inversion ({method})", unit="step")
    try:
        if method == "adam":
            z = torch.randn(starts, generator_model.latent_dim, generator=gen).to(device)
            history = _adam(per_start, z, steps, lr, bar)
        else:
            pool = torch.randn(max(candidates, starts), generator_model.latent_dim, generator=gen)
            z = _nearest(per_start, pool.to(device), starts)
            history = _lbfgs(per_start, z, steps, bar)
        with torch.no_grad():
            final = generator(z)[:, 0]
            errors = ((final - goal) ** 2).mean(dim=(1, 2)).cpu().numpy()
            final = final.cpu().numpy()
    finally:
        if bar is not None:
            bar.close()
        for p, r in zip(generator.parameters(), requires, strict=True):
            p.requires_grad_(r)
        generator.train(was_training)
    best = int(np.argmin(errors))
    z_all = z.detach().cpu().numpy().astype(np.float32)
    return InversionResult(
        z=z_all[best],
        reconstruction=final[best].astype(np.float32),
        error=float(errors[best]),
        errors=errors.astype(np.float64),
        z_all=z_all,
        history=np.asarray(history, dtype=np.float64),
        target_power=float(np.mean(target.astype(np.float64) ** 2)),
    )


def invert_configured(
    generator_model, image: np.ndarray, cfg, *, seed: int = 0, progress: bool = False, **overrides
) -> InversionResult:
    """:func:`invert` with the settings' ``directions.inversion_*`` (``cfg``: a
    :class:`~sharpseek.config.DirectionsSettings`); ``overrides`` replace any of them by
    :func:`invert`'s argument name (``starts``, ``steps``, ...). Runs on
    ``cfg.inversion_threads`` torch threads (restored after). The one road of the CLI's
    ``sharpseek invert`` and the UI's upload."""
    options = {
        "method": cfg.inversion_method,
        "starts": cfg.inversion_starts,
        "candidates": cfg.inversion_candidates,
        "steps": cfg.inversion_steps,
        "lr": cfg.inversion_lr,
    }
    options.update({k: v for k, v in overrides.items() if v is not None})
    threads = torch.get_num_threads()
    if cfg.inversion_threads:
        # small batches: a second thread mostly waits, and on a busy machine it spins
        torch.set_num_threads(cfg.inversion_threads)
    try:
        return invert(generator_model, image, seed=seed, progress=progress, **options)
    finally:
        torch.set_num_threads(threads)


def representation_warning(result: InversionResult, cfg) -> str | None:
    """A plain sentence when the GAN cannot represent the inverted patch, else None.

    The measure is :attr:`InversionResult.relative_error`; the threshold, ``cfg``'s
    ``inversion_warn_relative`` (a :class:`~sharpseek.config.DirectionsSettings`), is chosen
    by measurement: above what the GAN reaches on nearly all of its own training frames
    (benchmarks/bench_inversion.py, docs/ui.md).
    """
    threshold = cfg.inversion_warn_relative
    relative = result.relative_error
    if not relative > threshold:
        return None
    return (
        f"The GAN cannot represent this patch: its best reconstruction misses "
        f"{relative:.0%} of the patch's rms field (rms error {result.rms_gauss:.0f} G; "
        f"the GAN's own training frames stay under {threshold:.0%}). Shifts and look-alikes "
        "of its inversion describe a different region: search with the real patch itself."
    )


def _check_target(image: np.ndarray) -> np.ndarray:
    target = np.asarray(image, dtype=np.float32)
    if target.shape != (MODEL_SIZE, MODEL_SIZE):
        raise ValueError(
            f"image must be a model-space ({MODEL_SIZE}, {MODEL_SIZE}) array, got {target.shape}"
        )
    if not np.isfinite(target).all():
        raise ValueError("image contains NaN or infinite values")
    if np.abs(target).max() > 1.0 + 1e-6:
        raise ValueError(
            f"image values reach {np.abs(target).max():.3g}: not model space (b in [-1, 1]); "
            "convert B_r in gauss with sharpseek.data.preprocess.to_model_space"
        )
    return target


def _nearest(per_start, pool: torch.Tensor, starts: int) -> torch.Tensor:
    """The ``starts`` latent vectors of ``pool`` (n, latent_dim) whose images lie nearest to
    the target, as a fresh leaf tensor that takes gradients."""
    with torch.no_grad():
        errors = torch.cat([per_start(chunk) for chunk in pool.split(_CANDIDATE_BATCH)])
    return pool[errors.argsort()[:starts]].clone().requires_grad_(True)


def _adam(per_start, z: torch.Tensor, steps: int, lr: float, bar) -> list[float]:
    z.requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=lr)
    history = []
    for _ in range(steps):
        optimiser.zero_grad()
        errors = per_start(z)
        errors.sum().backward()  # starts are independent: the sum's gradient is each's
        optimiser.step()
        history.append(float(errors.detach().min()))
        if bar is not None:
            bar.update()
    return history


def _lbfgs(per_start, z: torch.Tensor, steps: int, bar) -> list[float]:
    # One L-BFGS over the batch: the summed loss is separable across starts, so its
    # gradient is each start's own; the shared line search only sets one step length.
    optimiser = torch.optim.LBFGS(
        [z], lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe"
    )
    history = []

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        errors = per_start(z)
        loss = errors.sum()
        loss.backward()
        history.append(float(errors.detach().min()))
        if bar is not None and bar.n < bar.total:
            bar.update()
        return loss

    optimiser.step(closure)
    return history
