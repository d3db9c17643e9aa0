"""DAC's factorized RVQ in NumPy: per codebook, project the residual down, pick the codeword of largest cosine,
project the raw codeword back up, subtract. The same face as NumpyRVQ (`quantize`, `dequantize`, `dim`, ...), so
every stage of the engine serves a DAC model unchanged; `load_rvq` picks the class from the model directory.

The arithmetic follows DAC's `VectorQuantize` step for step so that codes agree with its own, ties aside:
`F.normalize` (x / max(||x||, 1e-12)) on both sides, the distance written as ||e||^2 - 2 e.c + ||c||^2 with the
first minimum taken, and the residual updated with the straight-through form z_e + (codeword - z_e) that DAC's
forward computes (not bit-equal to the codeword in float32). Decoding uses the raw codeword, as DAC's from_codes.
"""

from __future__ import annotations

import numpy as np

from apucodec.errors import ApucodecError
from apucodec.model.directory import ModelDir
from apucodec.model.rvq_projections import ROLE, load_projections
from apucodec.runtime.rvq import NumpyRVQ, _blas_controller


def _normalize(x: np.ndarray) -> np.ndarray:
    norm = np.sqrt(np.einsum("fd,fd->f", x, x, dtype=np.float32))[:, None]
    return x / np.maximum(norm, np.float32(1e-12))


class ProjectedRVQ(NumpyRVQ):
    """Quantize [frames, latent_dim] rows to [n, frames] codes through per-codebook projections, and back."""

    def __init__(self, codebooks: np.ndarray, projections: dict[str, np.ndarray]) -> None:
        if codebooks.ndim != 3 or not np.all(np.isfinite(codebooks)):
            raise ApucodecError(f"codebooks must be finite [n, size, dim], got shape {codebooks.shape}")
        self.codebooks = np.ascontiguousarray(codebooks, dtype=np.float32)
        self._in_wt = np.ascontiguousarray(projections["in_weight"].transpose(0, 2, 1))    # [n, D, d]
        self._in_b = projections["in_bias"]
        self._out_wt = np.ascontiguousarray(projections["out_weight"].transpose(0, 2, 1))  # [n, d, D]
        self._out_b = projections["out_bias"]
        normed = np.stack([_normalize(book) for book in self.codebooks])
        self._normed_t = np.ascontiguousarray(normed.transpose(0, 2, 1))                    # [n, d, K]
        self._normed_sq = np.einsum("nkd,nkd->nk", normed, normed, dtype=np.float32)
        self._blas = _blas_controller()

    @property
    def dim(self) -> int:
        return self._out_b.shape[1]

    def _level(self, residual: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
        z_e = residual @ self._in_wt[level] + self._in_b[level]                    # [F, d]
        enc = _normalize(z_e)
        dist = np.einsum("fd,fd->f", enc, enc, dtype=np.float32)[:, None] \
            - np.float32(2) * (enc @ self._normed_t[level]) + self._normed_sq[level]
        idx = dist.argmin(axis=1)
        word = self.codebooks[level][idx]
        return idx, (z_e + (word - z_e)) @ self._out_wt[level] + self._out_b[level]

    def _decoded(self, level: int, codes: np.ndarray) -> np.ndarray:
        return self.codebooks[level][codes] @ self._out_wt[level] + self._out_b[level]


def load_rvq(model: ModelDir) -> NumpyRVQ:
    """The model directory's RVQ: projected (DAC) when it lists RVQ projections, else plain nearest-codeword."""
    if not model.has(ROLE):
        return NumpyRVQ(model.codebooks())
    books = model.codebooks()
    cfg = model.config
    return ProjectedRVQ(books, load_projections(model.path_of(ROLE), cfg.n_codebooks, cfg.latent_dim,
                                                books.shape[2]))
