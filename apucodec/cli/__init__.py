"""The `apucodec` command line: one small module per command group, loaded lazily (see main.py)."""
