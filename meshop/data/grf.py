"""Random fields for data generation: Gaussian random fields on grids and smooth fields on any points.

Every function takes an ``np.random.Generator``; the same generator state gives the same field.
"""

from __future__ import annotations

import numpy as np
from scipy.fft import idctn
from scipy.interpolate import RegularGridInterpolator

from ..errors import MeshError


def grf_on_grid(shape: tuple[int, ...], alpha: float = 2.0, tau: float = 3.0,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """A sample of the Gaussian random field N(0, (-Δ + τ² I)^(-α)) on a unit-square (cube) grid.

    Spectral synthesis in the cosine (Neumann) eigenbasis of -Δ on [0, 1]^d, exactly the recipe of the
    FNO Darcy data (``GRF.m``, covariance (-Δ + 9I)^-2 is ``tau=3, alpha=2``): coefficients
    ``τ^(α-1) (π² |k|² + τ²)^(-α/2) ξ_k``, ξ_k ~ N(0, 1), the constant mode set to 0, then an
    orthonormal inverse DCT scaled by ``sqrt(prod(shape))``.

    Args:
        shape: grid points per axis, e.g. ``(421, 421)``, equispaced on [0, 1] (DCT-II samples).
        alpha, tau: smoothness exponent and inverse length scale.
        rng: random generator (required for reproducibility).

    Returns:
        ``shape`` array of field values.
    """
    rng = rng if rng is not None else np.random.default_rng()
    wavenumbers = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    squared = sum(k.astype(np.float64) ** 2 for k in wavenumbers)
    coefficients = tau ** (alpha - 1) * (np.pi ** 2 * squared + tau ** 2) ** (-alpha / 2)
    spectrum = np.sqrt(np.prod(shape)) * coefficients * rng.standard_normal(shape)
    spectrum.flat[0] = 0.0
    return idctn(spectrum, type=2, norm="ortho")


def grf_fine_resolution(resolution: int, minimum: int = 421) -> int:
    """Smallest ``(resolution - 1) k + 1 >= minimum``: a grid that subsamples exactly to ``resolution``.

    The FNO Darcy data were synthesized at 421 points per side and subsampled by 5 to 85; this keeps
    that spectrum for any resolution (255 -> 509 points, subsampled by 2).
    """
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2 points per side, got {resolution}.")
    step = max(1, -(-(minimum - 1) // (resolution - 1)))
    return (resolution - 1) * step + 1


def grf_on_points(points: np.ndarray, rng: np.random.Generator, alpha: float = 2.0, tau: float = 3.0,
                  grid: int = 421) -> np.ndarray:
    """The grid GRF of :func:`grf_on_grid`, mapped onto the square around the points' bounding box
    (longest side -> 1) and linearly interpolated at 2D ``points`` ``(N, 2)``. Returns ``(N,)``."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise MeshError(f"points have shape {points.shape}; grf_on_points needs (N, 2).")
    unit = _to_unit_box(points)
    field = grf_on_grid((grid, grid), alpha=alpha, tau=tau, rng=rng)
    axis = np.linspace(0.0, 1.0, grid)
    return RegularGridInterpolator((axis, axis), field)(np.clip(unit, 0.0, 1.0))


def smooth_random_field(points: np.ndarray, rng: np.random.Generator, n_modes: int = 64,
                        length_scale: float = 0.25) -> np.ndarray:
    """A random smooth field on arbitrary points, scale-free: the same draw on a part in millimetres
    or in metres gives the same values.

    Random Fourier features (Rahimi & Recht): ``sqrt(2 / n) Σ_j cos(ω_j · x̂ + φ_j)`` with
    frequencies ω_j ~ N(0, I / ℓ²) and phases φ_j ~ U[0, 2π), so the field approximates a
    zero-mean, unit-variance Gaussian process with squared-exponential covariance of length ℓ;
    the amplitude spectrum decays as exp(-|ω|² ℓ² / 2). Coordinates x̂ are the points shifted to
    the bounding-box minimum and divided by the longest bounding-box side.

    Args:
        points: ``(N, d)`` coordinates, any unit.
        rng: random generator.
        n_modes: number of Fourier features (more = closer to Gaussian).
        length_scale: correlation length relative to the longest bounding-box side.

    Returns:
        ``(N,)`` field values, about zero mean and unit variance over draws.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or len(points) == 0:
        raise MeshError(f"points have shape {points.shape}; expected (N, d) with N >= 1.")
    if length_scale <= 0 or n_modes < 1:
        raise ValueError(f"need length_scale > 0 and n_modes >= 1, got {length_scale}, {n_modes}.")
    unit = _to_unit_box(points)
    frequencies = rng.standard_normal((n_modes, points.shape[1])) / length_scale
    phases = rng.uniform(0.0, 2.0 * np.pi, n_modes)
    return np.sqrt(2.0 / n_modes) * np.cos(unit @ frequencies.T + phases).sum(axis=1)


def _to_unit_box(points: np.ndarray) -> np.ndarray:
    """Shift to the bounding-box minimum and divide by the longest side (1 for a single point)."""
    lower = points.min(axis=0)
    extent = float((points.max(axis=0) - lower).max())
    return (points - lower) / (extent if extent > 0 else 1.0)
