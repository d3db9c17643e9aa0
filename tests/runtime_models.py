"""A tiny exported model for the runtime tests, with the torch model it came from (for whole-file references).

The runtime tests need control over the step sizes (small steps, so a few seconds of audio cross many step
boundaries) and the torch model itself, so they export their own instead of sharing a generic fixture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from apucodec.runtime.stage_plan import SessionSettings
from tests.audio_factory import mixture, speech_like, tone
from tests.tiny_models import tiny_codec

# The checked-in tiny model (scripts/build_test_model.py): live step 4 frames, offline 8; loads without torch.
CHECKED_IN_MODEL = Path(__file__).parent / "data" / "tiny-model"
STEP_FRAMES = (4, 16)  # a 3 s clip crosses ~16 offline-step boundaries
CPU_ONLY = SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=1)  # both graph stages, 1 thread


@dataclass
class RuntimeModel:
    path: Path
    torch_model: object  # apucodec.codec.model.APUCodec (eval)


def export_tiny(out_dir: Path, seed: int = 0, step_frames: tuple[int, ...] = STEP_FRAMES,
                preset_name: str = "tiny") -> RuntimeModel:
    """Export a tiny codec (tests.tiny_models) whose codebooks were initialised from a tone and speech-like audio."""
    torch = pytest.importorskip("torch")

    from apucodec.export import export_model

    torch.set_num_threads(1)
    model = tiny_codec(seed, np.stack([tone(1.0, 330.0), speech_like(1.0)]), preset_name)
    export_model(model, out_dir, step_frames=step_frames, log=None)
    return RuntimeModel(out_dir, model)


def whole_file_reference(model: object, audio: np.ndarray, n_codebooks: int | None = None) -> tuple[np.ndarray, ...]:
    """The PyTorch codec on the whole (hop-padded) signal: (codes [n, F], reconstruction trimmed to the input)."""
    torch = pytest.importorskip("torch")

    hop = model.config.hop_length
    frames = -(-audio.size // hop)
    padded = np.zeros(frames * hop, dtype=np.float32)
    padded[: audio.size] = audio
    with torch.no_grad():
        x = torch.from_numpy(padded)[None, None]
        latent = model.encoder(x)
        codes = model.quantizer.quantize_codes(latent, n_codebooks)
        recon = model.decoder(model.quantizer.dequantize(codes))
    return codes[0].numpy(), recon[0, 0, : audio.size].numpy()


def assert_codes_equal_ties_aside(codebooks: np.ndarray, vectors: np.ndarray, ours: np.ndarray, ref: np.ndarray,
                                  rel_tol: float = 1e-5) -> int:
    """Codes [n, rows] must agree, except where both candidates are equally near `vectors` [rows, dim] (a tie that
    float rounding breaks either way); returns how many vectors hit such a tie.

    After a tie the two residuals differ, so the later levels of that vector are not compared.
    """
    ties = 0
    for row in range(vectors.shape[0]):
        residual = vectors[row].astype(np.float64)
        for level in range(ours.shape[0]):
            a, b = ours[level, row], ref[level, row]
            if a != b:
                da = np.sum((residual - codebooks[level, a]) ** 2)
                db = np.sum((residual - codebooks[level, b]) ** 2)
                scale = np.sum(residual ** 2) + np.sum(codebooks[level, a] ** 2)
                assert abs(da - db) <= rel_tol * scale, f"row {row} level {level}: {a} vs {b} is not a tie"
                ties += 1
                break
            residual -= codebooks[level, a]
    return ties


def quantized_tiny(root: Path) -> Path:
    """A tiny model exported at steps 4 and 16 and quantized for the CPU (`quantize --target cpu`) on three
    generated recordings: what the CPU INT8 runtime and stream tests run."""
    import soundfile as sf

    from apucodec.calibration.cpu_quantize import quantize_cpu

    calib = root / "calib"
    calib.mkdir()
    sf.write(calib / "music.wav", mixture(3.0, seed=3), 44100)
    sf.write(calib / "speech.wav", speech_like(3.0, seed=4), 44100)
    sf.write(calib / "tone.wav", tone(3.0, 330.0), 44100)
    path = export_tiny(root / "model", step_frames=(4, 16)).path
    quantize_cpu(path, calib, clips=4, threads=1)
    return path
