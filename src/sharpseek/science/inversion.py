"""GAN inversion: the latent vector whose generated image is closest to a given one.

z_hat = argmin_z |image - G(z)|^2 (SCIENCE.md, "Physical directions"; the paper's Fig. 6),
found by Adam on z from several random starts at once (one batch through the generator), so
a real active region can be shifted along physical directions and used as a query like a
generated one. The reconstruction error grows toward the limb, where projection effects
make real patches unlike anything the generator learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from sharpseek.physics.parameters import MODEL_SIZE

__all__ = ["InversionResult", "invert"]


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
    history : ndarray (steps,)
        Best error over the starts after each step, in b^2.
    """

    z: np.ndarray
    reconstruction: np.ndarray
    error: float
    errors: np.ndarray
    z_all: np.ndarray
    history: np.ndarray

    @property
    def rms_gauss(self) -> float:
        """Root-mean-square difference of the best reconstruction [G]."""
        return float(np.sqrt(self.error) * 1000.0)


def invert(
    generator_model,
    image: np.ndarray,
    *,
    starts: int = 8,
    steps: int = 300,
    lr: float = 0.05,
    seed: int = 0,
    progress: bool = False,
) -> InversionResult:
    """Find z_hat = argmin_z mean (image - G(z))^2 from ``starts`` random starts at once.

    Parameters
    ----------
    generator_model : :class:`~sharpseek.models.inference.GeneratorModel`
        Its ``generator`` (a torch module, (n, latent_dim) -> (n, 1, 128, 128)) is used
        with gradients; its weights are not changed.
    image : ndarray (128, 128)
        Model-space target, b = clip(B_r / 1000 G, -1, 1), finite.
    starts : int
        Random starts z ~ N(0, I), optimised together in one batch.
    steps, lr : Adam steps and learning rate on z.
    seed : seed of the starts.

    Returns
    -------
    InversionResult

    Raises
    ------
    ValueError
        For an image that is not (128, 128), not finite, or outside [-1, 1] (not model
        space: run it through :func:`sharpseek.data.preprocess.to_model_space` first).
    """
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
    z = torch.randn(starts, generator_model.latent_dim, generator=gen).to(device)
    z.requires_grad_(True)
    goal = torch.from_numpy(target).to(device)[None]  # (1, 128, 128)
    optimiser = torch.optim.Adam([z], lr=lr)
    history = np.empty(steps)
    loop = range(steps)
    if progress:
        loop = tqdm(loop, desc="inversion", unit="step")
    try:
        for step in loop:
            optimiser.zero_grad()
            out = generator(z)[:, 0]  # (starts, 128, 128)
            per_start = ((out - goal) ** 2).mean(dim=(1, 2))  # (starts,)
            per_start.sum().backward()  # starts are independent: the sum's gradient is each's
            optimiser.step()
            history[step] = float(per_start.detach().min())
        with torch.no_grad():
            final = generator(z)[:, 0]
            errors = ((final - goal) ** 2).mean(dim=(1, 2)).cpu().numpy()
            final = final.cpu().numpy()
    finally:
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
        history=history,
    )
