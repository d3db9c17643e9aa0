"""The model directory and where models come from: its location, loading and checks (every file's sha256, cached
per file in verified_hashes), the passes that install a new version of it as a transaction (work_dirs), the user
cache and its upkeep, and models by name (the registry of official releases, their download, `apucodec pull`).

Torch-free: pulling exports, which imports torch lazily.
"""
