"""`apucodec listen`: a local page to hear and see what the codec does to some files (or --export it)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "model_option", metavar="DIR", default=None,
              help="Model directory (default: $APUCODEC_MODEL, ./apucodec-model, else the bundled model).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1 (0: a free one).")
@click.option("--export", "export_dir", type=click.Path(path_type=Path), default=None,
              help="Write the page as a static folder here (a new folder) instead of serving it.")
def listen(inputs: tuple[Path, ...], model_option: str | None, port: int, export_dir: Path | None) -> None:
    """Serve a listening page for INPUTS (audio files, .apc files or folders) on 127.0.0.1.

    Each input: original and decoded audio at 1..N codebooks with their bitrates, waveforms, spectrograms and the
    difference spectrogram, a blind A/B/X test, SI-SDR, mel distance (ViSQOL where installed), and a decode of the
    .apc codes in the browser itself (onnxruntime-web: WebGPU where available, WASM otherwise). Both stages run in
    FP32 on the CPU here. The URL carries a token; the server answers nothing without it.
    """
    from apucodec.errors import ApucodecError
    from apucodec.tools.listen.build import build_site

    site = build_site(list(inputs), model_option)
    if export_dir is not None:
        from apucodec.tools.listen.static_site import export_site

        count = export_site(site, export_dir)
        click.echo(f"wrote {count} files to {export_dir}; serve it with: python -m http.server -d {export_dir}")
        return
    from apucodec.tools.listen.server import ListenServer

    try:
        server = ListenServer(site, port)
    except OSError as exc:
        raise ApucodecError(f"listen: cannot listen on 127.0.0.1:{port} ({exc.strerror})") from None
    click.echo(f"listening page: {server.url}", err=False)
    click.echo("(127.0.0.1 only; Ctrl-C stops it)", err=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
