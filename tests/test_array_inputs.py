"""Arrays handed to the API: integer PCM scaled, either channel layout read, anything that is not audio refused with
one line, sample rates checked and other rates resampled."""

from __future__ import annotations

import numpy as np
import pytest

from apucodec.errors import ApucodecError
from apucodec.io.arrays import checked_array
from apucodec.io.resample import check_rate, resample_as_stream


def _checked(array: object) -> tuple[np.ndarray, list[str]]:
    notes: list[str] = []
    return checked_array(array, "<array>", notes), notes


def test_int_pcm_is_scaled_and_float64_cast():
    samples, notes = _checked(np.array([0, 16384, -32768, 32767], dtype=np.int16))
    np.testing.assert_allclose(samples[:, 0], [0.0, 0.5, -1.0, 32767 / 32768])
    assert samples.dtype == np.float32 and "int16 PCM" in notes[0]
    assert _checked(np.array([2**30], dtype=np.int32))[0][0, 0] == pytest.approx(0.5)
    assert _checked(np.array([128, 192, 0], dtype=np.uint8))[0][:, 0].tolist() == [0.0, 0.5, -1.0]
    assert _checked(np.array([64], dtype=np.int8))[0][0, 0] == 0.5
    samples, notes = _checked(np.array([0.25, -0.5]))
    assert samples.dtype == np.float32 and samples[:, 0].tolist() == [0.25, -0.5] and notes == []


def test_channels_are_read_in_either_layout():
    left, right = np.full(1000, 0.5, np.float32), np.full(1000, -0.25, np.float32)
    last, notes = _checked(np.stack([left, right], axis=1))  # [n, 2], soundfile's layout
    first, first_notes = _checked(np.stack([left, right]))  # [2, n], torch's layout
    assert last.shape == (1000, 2) and notes == []
    np.testing.assert_array_equal(first, last)
    assert any("[channels, samples]" in n for n in first_notes)
    mono_column, _ = _checked(left[:, None])
    assert mono_column.shape == (1000, 1)


@pytest.mark.parametrize(("value", "fragment"), [
    (np.float32(0.5), "0-D"),
    (np.zeros((2, 3, 100), np.float32), "3-D"),
    (np.zeros((4, 4), np.float32), "cannot tell channels"),
    (np.zeros(0, np.float32), "no audio samples"),
    (np.array([0.1, np.nan], np.float32), "NaN or infinite"),
    (np.array([0.1, np.inf]), "NaN or infinite"),
    (np.array([1e300, 0.0]), "NaN or infinite"),  # overflows float32
    (np.array([1, 2], dtype=np.int64), "int64"),
    (np.array(["a", "b"]), "not audio"),
])
def test_arrays_that_are_not_audio_are_refused(value, fragment):
    with pytest.raises(ApucodecError) as info:
        _checked(value)
    assert fragment in str(info.value) and str(info.value).startswith("<array>: ") and "\n" not in str(info.value)


@pytest.mark.parametrize(("rate", "fragment"), [(0, "0 Hz is outside 1000..1000000 Hz"),
                                                (44100.0, "must be an integer"), (True, "must be an integer")])
def test_rates_that_are_not_sample_rates_are_refused(rate, fragment):
    with pytest.raises(ApucodecError) as info:
        check_rate(rate)
    assert fragment in str(info.value) and str(info.value).startswith("<array>: ") and "\n" not in str(info.value)


def test_other_rates_are_resampled():
    samples = resample_as_stream(np.zeros(48000, np.float32) + 0.1, 48000, 44100)
    assert abs(samples.size - 44100) <= 1 and samples.dtype == np.float32
