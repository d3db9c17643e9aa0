"""`apucodec encode|decode|run DIR OUTDIR`: every file of a folder tree, mirrored into OUTDIR.

Why its own loop: a folder of a thousand clips must not stop at the first bad one, nor redo finished work. So:
* the tree is mirrored (a/b.flac -> OUTDIR/a/b.apc for encode, .apc -> .wav for decode, audio -> .wav for run);
* a file whose output exists and is newer than it is skipped (outputs are linked into place only when complete,
  so an existing output is a finished one);
* each failure is one `error:` line naming the file, and the run goes on; a summary line ends it, and the exit
  status is 1 when any file failed;
* the codec is opened once, and a progress bar (audio seconds) shows on a terminal when the work is over a few
  seconds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from apucodec.errors import ApucodecError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".snd", ".caf", ".w64", ".rf64"}
PROGRESS_MIN_SECONDS = 5.0


def list_inputs(root: Path, kind: str) -> list[Path]:
    """Files under `root` that `kind` takes (.apc for decode, audio otherwise), sorted, hidden ones left out."""
    wanted = {".apc"} if kind == "decode" else AUDIO_SUFFIXES
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in wanted
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def output_for(source: Path, root: Path, out_root: Path, kind: str) -> Path:
    return (out_root / source.relative_to(root)).with_suffix(".apc" if kind == "encode" else ".wav")


def _finished(source: Path, target: Path) -> bool:
    return target.is_file() and target.stat().st_mtime >= source.stat().st_mtime


def _seconds(source: Path, kind: str) -> float:
    try:
        if kind == "decode":
            from apucodec.io.apc_reader import open_apc

            with open_apc(source) as reader:
                return reader.header.seconds
        from apucodec.io.audio_read import probe

        return probe(source).frames / max(probe(source).sample_rate, 1)
    except ApucodecError:
        return 0.0


def run_folder(kind: str, root: Path, out_root: Path, open_codec: Callable[[], Any],
               work: Callable[[Any, Path, Path], Any]) -> None:
    """Apply `work(codec, source, target)` to every input of `root` not yet done; one line per failure."""
    if (out_root.exists() and not out_root.is_dir()) or out_root.suffix.lower() in {*AUDIO_SUFFIXES, ".apc"}:
        raise ApucodecError(f"{root}: is a directory, so the output must be a folder too, not {out_root}")
    if out_root.resolve() == root.resolve() or root.resolve() in out_root.resolve().parents:
        raise ApucodecError(f"{out_root}: the output folder must not be inside the input folder {root}")
    sources = list_inputs(root, kind)
    if not sources:
        raise ApucodecError(f"{root}: no {'.apc' if kind == 'decode' else 'audio'} files in this folder")
    todo = [s for s in sources if not _finished(s, output_for(s, root, out_root, kind))]
    skipped = len(sources) - len(todo)
    failed = done = 0
    seconds = {s: _seconds(s, kind) for s in todo}
    total = sum(seconds.values())
    bar = None
    if todo:
        codec = open_codec()
        if total >= PROGRESS_MIN_SECONDS and sys.stderr.isatty():
            bar = click.progressbar(length=max(int(total), 1), label=kind, file=sys.stderr)
            bar.__enter__()
        try:
            for source in todo:
                target = output_for(source, root, out_root, kind)
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    work(codec, source, target)
                    done += 1
                except ApucodecError as exc:
                    failed += 1
                    line = str(exc) if str(source) in str(exc) else f"{source}: {exc}"
                    click.echo(f"error: {line}", err=True)
                if bar is not None:
                    bar.update(int(seconds[source]))
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
    click.echo(f"{kind}: {done} done, {skipped} already done, {failed} failed, {total:.1f} s of audio "
               f"-> {out_root}")
    if failed:
        sys.exit(1)
