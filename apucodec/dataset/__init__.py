"""Corpora to codes and back: `apucodec tokenize` on Ray Data, and reading its Parquet shards.

    from apucodec.dataset import TokenDataset, TokenizeOptions, tokenize
    tokenize("corpus/", "corpus-codes/", TokenizeOptions(workers=2))
    for item in TokenDataset("corpus-codes/"): ...

Needs the `tokenize` extra (ray[data], pyarrow), imported lazily: `import apucodec.dataset` itself is cheap, and a
missing extra is one line naming it. Names are resolved on first use for the same reason.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TokenDataset", "TokenItem", "TokenizeOptions", "TokenizeReport", "tokenize"]


def __getattr__(name: str) -> Any:
    if name in ("TokenDataset", "TokenItem"):
        from apucodec.dataset import shard_reader
        return getattr(shard_reader, name)
    if name in ("TokenizeOptions", "TokenizeReport", "tokenize"):
        from apucodec.dataset import tokenize_run
        return getattr(tokenize_run, name)
    raise AttributeError(f"module 'apucodec.dataset' has no attribute {name!r}")
