"""NumPy RVQ (the runtime's CPU lane) against the PyTorch quantizer it must reproduce."""

from __future__ import annotations

import numpy as np
import pytest

from apucodec.errors import ApucodecError
from apucodec.runtime.rvq import NumpyRVQ
from tests.runtime_models import assert_codes_equal_ties_aside

torch = pytest.importorskip("torch")


def _reference_codes(codebooks: np.ndarray, vectors: np.ndarray, n: int) -> np.ndarray:
    from apucodec.codec.quantizer import ResidualVectorQuantizer
    from apucodec.contract.config import CodecConfig

    cfg = CodecConfig(latent_dim=codebooks.shape[2], codebook_size=codebooks.shape[1], n_codebooks=codebooks.shape[0])
    rvq = ResidualVectorQuantizer(cfg).eval()
    rvq.codebooks.copy_(torch.from_numpy(codebooks))
    latent = torch.from_numpy(vectors).T[None]  # [1, D, T]
    with torch.no_grad():
        return rvq.quantize_codes(latent, n)[0].numpy()


def test_codes_match_torch_on_random_vectors():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    codebooks = rng.standard_normal((8, 2048, 128)).astype(np.float32)
    vectors = (2.0 * rng.standard_normal((10_240, 128))).astype(np.float32)
    ours = NumpyRVQ(codebooks).quantize(vectors)
    ref = _reference_codes(codebooks, vectors, 8)
    assert ours.shape == ref.shape == (8, 10_240)
    ties = assert_codes_equal_ties_aside(codebooks, vectors, ours, ref)
    assert ties <= 10  # ties are rare; a systematic difference would show up as thousands
    assert (ours == ref).mean() > 0.999


def test_codes_match_torch_with_fewer_codebooks_and_dequantize_matches():
    rng = np.random.default_rng(1)
    codebooks = rng.standard_normal((4, 64, 16)).astype(np.float32)
    vectors = rng.standard_normal((2000, 16)).astype(np.float32)
    rvq = NumpyRVQ(codebooks)
    ours = rvq.quantize(vectors, 3)
    ref = _reference_codes(codebooks, vectors, 3)
    assert_codes_equal_ties_aside(codebooks, vectors, ours, ref)
    np.testing.assert_array_equal(ours, ref)

    from apucodec.codec.quantizer import ResidualVectorQuantizer
    from apucodec.contract.config import CodecConfig

    torch_rvq = ResidualVectorQuantizer(CodecConfig(latent_dim=16, codebook_size=64, n_codebooks=4))
    torch_rvq.codebooks.copy_(torch.from_numpy(codebooks))
    expected = torch_rvq.dequantize(torch.from_numpy(ours.astype(np.int64))[None])[0].T.numpy()
    np.testing.assert_allclose(rvq.dequantize(ours), expected, rtol=0, atol=1e-6)


def test_quantize_recovers_exact_codeword_sums():
    rng = np.random.default_rng(2)
    # Well separated codebooks at decreasing scales: the sum of one codeword per level is quantized back exactly.
    codebooks = np.stack([rng.standard_normal((32, 8)) * 10.0 ** -i for i in range(3)]).astype(np.float32)
    codes = rng.integers(0, 32, size=(3, 50))
    rvq = NumpyRVQ(codebooks)
    np.testing.assert_array_equal(rvq.quantize(rvq.dequantize(codes)), codes)


def test_more_codebooks_reduce_the_error():
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((500, 16)).astype(np.float32)
    # Codebooks fitted greedily to this data's residuals, as training would.
    levels, residual = [], vectors.copy()
    for _ in range(4):
        book = residual[rng.choice(len(residual), 64, replace=False)]
        levels.append(book)
        residual = residual - book[NumpyRVQ(book[None]).quantize(residual)[0]]
    rvq = NumpyRVQ(np.stack(levels))
    errors = [np.mean((rvq.dequantize(rvq.quantize(vectors, n)) - vectors) ** 2) for n in range(1, 5)]
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False))


def test_bad_arguments():
    rvq = NumpyRVQ(np.zeros((2, 4, 3), dtype=np.float32))
    with pytest.raises(ApucodecError, match="1..2"):
        rvq.quantize(np.zeros((5, 3), dtype=np.float32), 3)
    with pytest.raises(ValueError):
        rvq.quantize(np.zeros((5, 4), dtype=np.float32))
    with pytest.raises(ApucodecError, match="NaN"):
        NumpyRVQ(np.full((1, 2, 2), np.nan, dtype=np.float32))
