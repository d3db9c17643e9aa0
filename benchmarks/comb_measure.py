"""The frame-rate comb measure now lives in the package (apucodec/tools/comb.py, used by `apucodec eval`); this
name stays for the benchmarks that import it."""

from apucodec.tools.comb import BAND_HZ, frame_rate_comb, line_level_db, welch_power

__all__ = ["BAND_HZ", "frame_rate_comb", "line_level_db", "welch_power"]
