"""`apucodec cache`: what the per-user cache holds, per kind, and `--clear` to empty it."""

from __future__ import annotations

import json

import click


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@click.command()
@click.option("--clear", "clear_kinds", is_flag=True, help="Remove the cache (everything, or the --kind given).")
@click.option("--kind", "kinds", multiple=True,
              help="With --clear: only this kind (ort-optimized, verified, vitisai, quark; repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the sizes as JSON.")
def cache(clear_kinds: bool, kinds: tuple[str, ...], as_json: bool) -> None:
    """Show the size of apucodec's per-user cache per kind ($APUCODEC_CACHE_DIR, else ~/.cache/apucodec)."""
    from apucodec.errors import ApucodecError
    from apucodec.model.cache_admin import DEFAULT_MAX_MB, KINDS, MAX_ENV, clear, max_bytes, usage
    from apucodec.model.user_cache import cache_root

    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ApucodecError(f"--kind {unknown[0]}: not one of {', '.join(KINDS)}")
    if kinds and not clear_kinds:
        raise ApucodecError("--kind goes with --clear")
    root = cache_root()
    if clear_kinds:
        freed = clear(root, list(kinds) or None)
        click.echo(f"cleared {', '.join(kinds) if kinds else 'the cache'} in {root}: {_mb(freed)} freed")
        return
    entries = usage(root)
    if as_json:
        click.echo(json.dumps({"root": str(root), "cap_bytes": max_bytes(),
                               "kinds": {e.kind: {"description": e.description, "files": e.files, "bytes": e.bytes}
                                         for e in entries}}, indent=2))
        return
    click.echo(f"cache {root}: {_mb(sum(e.bytes for e in entries))} in {sum(e.files for e in entries)} files")
    for e in entries:
        click.echo(f"  {e.kind:14s} {_mb(e.bytes):>10s} {e.files:6d} files  {e.description}")
    click.echo(f"optimized graphs are capped at {_mb(max_bytes())} (least recently used go first; "
               f"${MAX_ENV}, default {DEFAULT_MAX_MB:g}); clear with: apucodec cache --clear")
