"""Models by name: the registry of official releases, their download into the user cache, and `apucodec pull`.

(The model directory's own modules, apucodec/model_dir.py, model_checks.py and model_location.py, are to move here
as the target layout in ARCHITECTURE.md says.) Torch-free: pulling exports, which imports torch lazily.
"""
