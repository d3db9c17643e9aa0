"""The RVQ projections file of a factorized-code model (DAC): `rvq_projections.npz`, beside `codebooks.npy`.

DAC searches each codebook in a small space reached by a 1x1 convolution of the latent residual (in_proj,
latent_dim -> codebook_dim) and maps the chosen codeword back with another (out_proj). Export folds their weight
norm and stores the four stacked arrays here:

    in_weight [n, codebook_dim, latent_dim]   in_bias [n, codebook_dim]
    out_weight [n, latent_dim, codebook_dim]  out_bias [n, latent_dim]

A plain .npz of float32 arrays, read with allow_pickle=False and every name, shape and value checked before use
(the manifest lists it with its sha256 like every other file). Torch-free: the runtime reads it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from apucodec.errors import ApucodecError

ROLE = "rvq_projections"
FILENAME = "rvq_projections.npz"
NAMES = ("in_weight", "in_bias", "out_weight", "out_bias")


def projection_shapes(n: int, latent_dim: int, codebook_dim: int) -> dict[str, tuple[int, ...]]:
    return {"in_weight": (n, codebook_dim, latent_dim), "in_bias": (n, codebook_dim),
            "out_weight": (n, latent_dim, codebook_dim), "out_bias": (n, latent_dim)}


def save_projections(path: Path, arrays: dict[str, np.ndarray]) -> None:
    np.savez(path, **{k: np.ascontiguousarray(arrays[k], dtype=np.float32) for k in NAMES})


def load_projections(path: Path, n: int, latent_dim: int, codebook_dim: int) -> dict[str, np.ndarray]:
    """The four arrays as float32, or one ApucodecError naming the file and what is wrong."""
    want = projection_shapes(n, latent_dim, codebook_dim)
    try:
        with np.load(path, allow_pickle=False) as data:
            if sorted(data.files) != sorted(NAMES):
                raise ApucodecError(f"{path}: RVQ projections must hold exactly {', '.join(NAMES)}; found "
                                    f"{', '.join(sorted(data.files)) or 'nothing'}")
            arrays = {}
            for name in NAMES:
                array = data[name]
                if array.dtype != np.float32 or array.shape != want[name]:
                    raise ApucodecError(f"{path}: {name} is {array.dtype} {list(array.shape)}, expected float32 "
                                        f"{list(want[name])}")
                arrays[name] = np.ascontiguousarray(array)
    except ApucodecError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ApucodecError(f"{path}: not a NumPy .npz of RVQ projections ({text})") from None
    if not all(np.all(np.isfinite(a)) for a in arrays.values()):
        raise ApucodecError(f"{path}: RVQ projections hold NaN or infinite values")
    return arrays
