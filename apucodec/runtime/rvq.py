"""Residual vector quantization in NumPy: the CPU lane of the pipeline.

The codebooks live here, once, on the CPU side: `quantize` turns encoder latents into codes (encode), and
`dequantize` turns codes back into the quantized latent the decoder graph takes (decode). The nearest codeword is
found with the same formula as training, argmin over ||c||^2 - 2 x.c (||x||^2 is constant per row), as one float32
GEMM per codebook with the norms computed once at load — so codes match the PyTorch quantizer's, ties aside.

The GEMMs are small ([frames, 128] x [128, 2048] per level), and they run while the encoder and decoder sessions
work on other steps: a multi-threaded BLAS only adds threads that spin for the cores ONNX Runtime is using (on a
2-core CPU, under load, OpenBLAS took 12-16 ms per GEMM with 2 threads and 0.7-1.2 ms with one). So each call runs
with BLAS limited to one thread (threadpoolctl; without it, BLAS keeps its own default).
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from apucodec.errors import ApucodecError


class NumpyRVQ:
    """Quantize [frames, dim] latents to [n, frames] codes and back, with precomputed codebook norms."""

    def __init__(self, codebooks: np.ndarray) -> None:
        if codebooks.ndim != 3:
            raise ApucodecError(f"codebooks must be [n_codebooks, codebook_size, dim], got shape {codebooks.shape}")
        if not np.all(np.isfinite(codebooks)):
            raise ApucodecError("codebooks contain NaN or infinite values")
        self.codebooks = np.ascontiguousarray(codebooks, dtype=np.float32)
        # [n, dim, K]: each level's GEMM reads a contiguous right-hand side. Scaled by -2 here, which is exact in
        # floating point, so x @ (-2 C^T) + ||c||^2 gives the very scores of the formula with one pass less per level.
        self._codebooks_t_m2 = np.ascontiguousarray(self.codebooks.transpose(0, 2, 1) * np.float32(-2.0))
        self._norms = np.einsum("nkd,nkd->nk", self.codebooks, self.codebooks, dtype=np.float32)
        self._blas = _blas_controller()

    @property
    def n_codebooks(self) -> int:
        return self.codebooks.shape[0]

    @property
    def codebook_size(self) -> int:
        return self.codebooks.shape[1]

    @property
    def dim(self) -> int:
        return self.codebooks.shape[2]

    def _check_n(self, n_codebooks: int | None) -> int:
        n = self.n_codebooks if n_codebooks is None else int(n_codebooks)
        if not 1 <= n <= self.n_codebooks:
            raise ApucodecError(f"codebooks to use must be in 1..{self.n_codebooks}, got {n}")
        return n

    def quantize(self, vectors: np.ndarray, n_codebooks: int | None = None) -> np.ndarray:
        """Codes [n, frames] (int32) for latent rows `vectors` [frames, dim], residual over codebooks in order."""
        n = self._check_n(n_codebooks)
        residual = np.array(vectors, dtype=np.float32, order="C", copy=True)
        if residual.ndim != 2 or residual.shape[1] != self.dim:
            raise ValueError(f"expected [frames, {self.dim}] latents, got shape {residual.shape}")
        codes = np.empty((n, residual.shape[0]), dtype=np.int32)
        with self._one_blas_thread():
            for level in range(n):
                codes[level], used = self._level(residual, level)
                residual -= used
        return codes

    def _level(self, residual: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
        """(This level's codes for the residual rows, what the level takes off the residual): the nearest codeword.
        A family with another quantizer (rvq_projected.py) overrides this and `_decoded`, and keeps the loop."""
        scores = residual @ self._codebooks_t_m2[level]   # [frames, K] float32 BLAS: -2 x.c
        scores += self._norms[level]
        idx = scores.argmin(axis=1)
        return idx, self.codebooks[level][idx]

    def _decoded(self, level: int, codes: np.ndarray) -> np.ndarray:
        """One level's contribution to the quantized latent rows for its codes."""
        return self.codebooks[level][codes]

    def _one_blas_thread(self) -> contextlib.AbstractContextManager[Any]:
        return self._blas.limit(limits=1) if self._blas is not None else contextlib.nullcontext()

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        """Quantized latent rows [frames, dim]: the sum of each level's looked-up codeword."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or not 1 <= codes.shape[0] <= self.n_codebooks:
            raise ValueError(f"expected [1..{self.n_codebooks}, frames] codes, got shape {codes.shape}")
        out = np.zeros((codes.shape[1], self.dim), dtype=np.float32)
        for level in range(codes.shape[0]):
            out += self._decoded(level, codes[level])
        return out


_CONTROLLER: Any = None


def _blas_controller() -> Any:
    """threadpoolctl's handle on the BLAS libraries NumPy loaded (found once per process), or None without it."""
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return None
        _CONTROLLER = ThreadpoolController().select(user_api="blas")
    return _CONTROLLER
