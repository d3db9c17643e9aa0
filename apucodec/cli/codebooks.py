"""--codebooks and --bandwidth: how many codebooks a command uses, checked against the model (its count is the
model's, so click cannot check the range itself)."""

from __future__ import annotations

from typing import Any

from apucodec.contract.config import codebooks_to_use
from apucodec.errors import ApucodecError

CODEBOOKS_HELP = "Codebooks to use, 1..N where N is the model's count (fewer = lower bitrate; default all)."
BANDWIDTH_HELP = ("Bitrate in kbps instead of --codebooks (EnCodec 24 kHz: 1.5, 3, 6, 12, 24 = 2, 4, 8, 16, 32 "
                  "codebooks); must be a whole number of codebooks.")


def codebooks_for_bandwidth(n_codebooks: int | None, kbps: float | None, codec: Any) -> int | None:
    """--bandwidth -> codebooks (EnCodec's bandwidths are codebook counts): exact multiples of one codebook's
    bitrate only, so the file's bitrate is what was asked for."""
    if kbps is None:
        return n_codebooks
    if n_codebooks is not None:
        raise ApucodecError("give --codebooks or --bandwidth, not both")
    per_codebook = codec.config.bitrate(1) / 1000
    n = round(kbps / per_codebook)
    if abs(n * per_codebook - kbps) > 1e-6 or not 1 <= n <= codec.config.n_codebooks:
        valid = ", ".join(f"{per_codebook * k:g}" for k in range(1, codec.config.n_codebooks + 1))
        raise ApucodecError(f"--bandwidth {kbps:g}: this model ({codec.model.path}) codes at {valid} kbps")
    return n


def check_codebooks(n_codebooks: int | None, model: Any) -> None:
    """--codebooks against the model's manifest (the option's range depends on the model, so click cannot)."""
    if n_codebooks is not None:
        codebooks_to_use(n_codebooks, model.config.n_codebooks, model.path)
