"""The model directory and where models come from: its location, loading and checks (every file's sha256, cached
per file in verified_hashes), the passes that install a new version of it as a transaction (work_dirs), the user
cache and its upkeep, and models by name (the registry of official releases and their checked download; the
export of a pulled release is apucodec/export/pull_release.py, a layer up). Torch-free.
"""
