"""`apucodec pull NAME`: an official release (DAC, EnCodec) downloaded, checked and exported, usable by name."""

from __future__ import annotations

import click

from apucodec.errors import ApucodecError


@click.command("pull")
@click.argument("name", required=False)
@click.option("--list", "list_names", is_flag=True, help="List the names that can be pulled, and which are.")
@click.option("--force", is_flag=True, help="Export again even if the model was already pulled from this file.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final lines.")
def pull(name: str | None, list_names: bool, force: bool, quiet: bool) -> None:
    """Download an official release file into the user cache, check its sha256, export it, and make it loadable
    as --model NAME / apucodec.load(NAME). An interrupted download resumes on the next pull."""
    from apucodec.model.registry import pulled_dir, releases

    if list_names:
        for release in releases().values():
            state = "pulled" if (pulled_dir(release.name) / "manifest.json").is_file() else "not pulled"
            click.echo(f"{release.name:16s} {state:10s} {release.description} ({release.url}; sha256 "
                       f"{release.trust})")
        return
    if not name:
        raise ApucodecError("pull needs a model NAME (apucodec pull --list shows them)")
    from apucodec.export.pull_release import pull as run_pull

    log = None if quiet else (lambda message: click.echo(message, err=True))
    result = run_pull(name, force=force, log=log)
    for line in result.lines():
        click.echo(line)
