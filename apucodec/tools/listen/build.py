"""From the command line's arguments to a `Site`: the model opened on the CPU in FP32, the inputs listed.

Both stages run their FP32 step graphs on the CPU EP here, whatever the machine has: the page is a reference for
the ear and the eye, the numbers must not change with the machine, and the decoder graph is then the very graph
the browser runs, so the page can hold the browser's decode against the server's sample by sample.
"""

from __future__ import annotations

import logging
from pathlib import Path

from apucodec.errors import ApucodecError
from apucodec.tools.listen.inputs import Inputs, list_sources
from apucodec.tools.listen.site import Site

log = logging.getLogger("apucodec")


def open_codec(model: str | Path | None):  # noqa: ANN201 - apucodec.api.Codec, imported lazily
    """FP32 on the CPU EP for both stages: the decodes the page plays come from the very graph the browser runs."""
    from apucodec.api import load

    return load(model, precision="fp32", eps={"encoder": "cpu", "decoder": "cpu"})


def build_site(paths: list[Path], model: str | Path | None) -> Site:
    """The page's site for `paths` (files or folders): every input checked to exist and be readable first."""
    from apucodec.contract.config import bits_per_code
    from apucodec.io.apc_header import HEADER_SIZE, check_header
    from apucodec.io.audio_read import probe

    sources = list_sources(paths)
    codec = open_codec(model)
    for source in sources:
        if not source.is_apc:
            probe(source.path)  # one line now for a file that is not audio, not a failed section later
        else:
            with open(source.path, "rb") as fh:
                raw = fh.read(HEADER_SIZE)
            header = check_header(raw.ljust(HEADER_SIZE, b"\0"), str(source.path), source.path.stat().st_size)
            if header.model_id != codec.model.model_id:
                raise ApucodecError(f"{source.path}: codes were made by model {header.model_id}, not by "
                                    f"{codec.model.model_id} (pass that model with --model)")
    return Site(Inputs(sources, codec), codec.model.path, codec.hop, bits_per_code(codec.codebook_size))
