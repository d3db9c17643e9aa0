"""A tiny PNG encoder (zlib only), so the listening page's images need neither matplotlib nor Pillow.

PNG is the one image format every browser shows and that is simple to write exactly: a signature, an IHDR chunk,
the filtered scanlines deflated in one IDAT chunk, and IEND; each chunk carries a CRC32 of its type and data.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB image [height, width, 3] (uint8) as PNG bytes (filter 0 on every row)."""
    image = np.ascontiguousarray(rgb, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3 or not image.shape[0] or not image.shape[1]:
        raise ValueError(f"expected a non-empty [height, width, 3] image, got shape {image.shape}")
    height, width = image.shape[:2]
    rows = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, width * 3)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit truecolour, no interlace
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + \
        _chunk(b"IEND", b"")


# Anchor colours of two colour maps, interpolated linearly: a perceptually ordered dark-to-bright map for levels,
# and a diverging blue-white-red map for signed differences (blue: the decode lacks energy, red: it adds energy).
_LEVELS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                    [250, 193, 39], [252, 255, 164]], dtype=np.float64)
_DIVERGING = np.array([[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]],
                      dtype=np.float64)


def _apply(anchors: np.ndarray, values: np.ndarray) -> np.ndarray:
    t = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0) * (len(anchors) - 1)
    low = np.minimum(t.astype(np.int64), len(anchors) - 2)
    frac = (t - low)[..., None]
    return (anchors[low] * (1 - frac) + anchors[low + 1] * frac).round().astype(np.uint8)


def colour_levels(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB (dark = 0, bright = 1)."""
    return _apply(_LEVELS, values)


def colour_signed(values: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] -> RGB (blue negative, white zero, red positive)."""
    return _apply(_DIVERGING, (np.asarray(values) + 1.0) / 2.0)
