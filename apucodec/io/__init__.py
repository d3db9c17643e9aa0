"""Audio and code files in and out: read, downmix and resample to what the codec hears; the one output path (an
unnamed temp file linked into place, devices and pipes written in place, stdin spooled once); the `.apc` format.

Torch-free and engine-free: the runtime, the API, training data and calibration all read and write through here,
so "what the codec hears" and "what a finished output is" are each defined once.
"""
