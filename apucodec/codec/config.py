"""The codec configuration lives in the torch-free contract (`apucodec.contract.config`); this name stays for the
training code and for users' scripts that import it from here."""

from apucodec.contract.config import ACTIVATIONS, NORMS, PRESETS, UPSAMPLE_INITS, CodecConfig, preset

__all__ = ["ACTIVATIONS", "NORMS", "PRESETS", "UPSAMPLE_INITS", "CodecConfig", "preset"]
