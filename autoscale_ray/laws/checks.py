"""Array-level checks the laws and the tables share: find the first bad cell, keep rows on the simplex.

Pure numpy. Each check raises `BadInput`; the wording of a site's message stays with the site
(it is passed in), so one rule ("a weight is a finite number >= 0, a row sums to > 0") is written
once while a runs table, a mixtures file and the regression API each name the cell their way.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from autoscale_ray.errors import BadInput

Mask = Callable[[np.ndarray], np.ndarray]
CellError = Callable[[int, int, float], BadInput]   # (row, column, value) -> the error to raise
RowError = Callable[[int], BadInput]                 # row -> the error to raise


def not_a_weight(w: np.ndarray) -> np.ndarray:
    """True where a value cannot be a mixture weight: NaN, inf or negative."""
    return ~np.isfinite(w) | (w < 0)


def missing(w: np.ndarray) -> np.ndarray:
    return np.isnan(w)


def negative(w: np.ndarray) -> np.ndarray:
    return w < 0


def first_cell(bad: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first True of a 2-D mask in row-major order, or None."""
    if not bad.any():
        return None
    r, c = np.argwhere(bad)[0]
    return int(r), int(c)


def first_index(bad: np.ndarray) -> int | None:
    """Position of the first True of a 1-D mask, or None."""
    return int(np.argmax(bad)) if bad.any() else None


def matrix(values: Sequence[Sequence[float]] | np.ndarray, where: str) -> np.ndarray:
    """A non-empty 2-D float array (rows x domains)."""
    w = np.asarray(values, dtype=float)
    if w.ndim != 2 or w.shape[0] == 0 or w.shape[1] == 0:
        raise BadInput(f"weights must be a non-empty 2-D array (rows x domains), got {w.shape}",
                       where)
    return w


_ON_SIMPLEX = 1e-12  # |sum - 1| of weights that were normalised already (a few ulps)


def simplex_rows(w: np.ndarray, cells: Sequence[tuple[Mask, CellError]],
                 zero_row: RowError) -> np.ndarray:
    """`w` with each row divided by its sum, after each (mask, error) of `cells` in turn finds no
    bad cell and no row sums to <= 0. A row already summing to 1 within rounding is kept as it is,
    so normalising twice changes nothing (a search's runs table refits to the search's own answer).
    A cell no mask flags passes unchanged (a caller that lets inf through gets NaN rows, as it
    always did)."""
    for mask, error in cells:
        cell = first_cell(mask(w))
        if cell is not None:
            raise error(cell[0], cell[1], float(w[cell]))
    sums = w.sum(axis=1)
    row = first_index(sums <= 0)
    if row is not None:
        raise zero_row(row)
    return w / np.where(np.abs(sums - 1.0) <= _ON_SIMPLEX, 1.0, sums)[:, None]


def weight_matrix(values: Sequence[Sequence[float]] | np.ndarray, where: str) -> np.ndarray:
    """A non-empty rows x domains array of finite weights >= 0, each row normalised to sum 1."""
    return simplex_rows(matrix(values, where), [(not_a_weight, lambda r, c, v: BadInput(
        f"weight [{r}, {c}] = {v} is not a finite number >= 0", where))],
        lambda r: BadInput(f"row {r} of the weights is all zero", where,
                           "give at least one domain a positive weight"))


def on_simplex(p: np.ndarray, *, positive: bool = False, finite: bool = True) -> bool:
    """Whether a weight vector can be normalised: entries >= 0 (> 0 with `positive`), finite
    unless `finite` is False, and a positive sum."""
    if finite and not np.isfinite(p).all():
        return False
    low = (p <= 0) if positive else (p < 0)
    return not low.any() and not p.sum() <= 0  # (a NaN sum passes when `finite` is False)
