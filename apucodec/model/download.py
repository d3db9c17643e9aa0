"""Download one release file into the user cache, resumably, and check its sha256 before anyone reads it.

Where: cache_root()/downloads/FILE (model/user_cache.py). While it arrives it is FILE.part; only a complete file
whose sha256 passed its check is renamed to FILE, so a half-written or wrong file never carries the final name.

What is left behind when it fails (each failure is one line):
* interrupted (connection dropped, body shorter than its Content-Length, timeout, Ctrl-C): the bytes received stay
  in FILE.part, and the next pull resumes there with an HTTP Range request (a server that ignores the range sends
  the whole file again, which replaces the part);
* wrong sha256: the file is removed (resuming would only extend wrong bytes);
* disk full (ENOSPC, EFBIG, EDQUOT): the part is removed, freeing what it took;
* server error (4xx/5xx) or no connection: nothing is written (an existing part is left as it was).

Hashes: a release's published sha256 (or sha256 prefix) is checked; with no published full hash the first
download's sha256 is recorded in downloads/first-use-sha256.json (trust on first use) and every later download of
the same URL must match it. Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apucodec import __version__
from apucodec.errors import ApucodecError
from apucodec.model.registry import Release
from apucodec.model.user_cache import cache_root

DOWNLOADS_SUBDIR = "downloads"
FIRST_USE_FILE = "first-use-sha256.json"
CHUNK = 1 << 20
TIMEOUT_S = 60.0
NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")

Log = Callable[[str], None]


@dataclass
class Downloaded:
    """A checked release file: where, its sha256, and how it was trusted ('pinned', 'prefix', 'first-use',
    'recorded': matched the hash recorded at its first download)."""

    path: Path
    sha256: str
    bytes: int
    trust: str
    fetched: bool          # False: an earlier download was reused
    resumed_from: int = 0


class _Interrupted(Exception):
    pass


def downloads_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / DOWNLOADS_SUBDIR


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _records(folder: Path) -> dict[str, dict[str, object]]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((folder / FIRST_USE_FILE).read_text())
        if isinstance(data, dict):
            return data
    return {}


def recorded_sha256(release: Release, root: Path | None = None) -> str | None:
    """The sha256 recorded at the first download of the release's URL, if any."""
    entry = _records(downloads_dir(root)).get(release.url)
    value = entry.get("sha256") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


def _record(release: Release, digest: str, size: int, folder: Path) -> Path:
    records = _records(folder)
    records[release.url] = {"name": release.name, "sha256": digest, "bytes": size,
                            "recorded_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = folder / FIRST_USE_FILE
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(records, fh, indent=1)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def check_sha256(release: Release, digest: str, recorded: str | None) -> str:
    """How `digest` is trusted for `release`; raises (one line) when it contradicts a pin or the record."""
    if release.sha256 and digest != release.sha256:
        raise ApucodecError(f"{release.url}: sha256 {digest} does not match the pinned {release.sha256}")
    if release.sha256_prefix and not digest.startswith(release.sha256_prefix):
        raise ApucodecError(f"{release.url}: sha256 {digest} does not start with the published "
                            f"{release.sha256_prefix}")
    if recorded is not None and digest != recorded:
        raise ApucodecError(f"{release.url}: sha256 {digest} differs from the {recorded} recorded at its first "
                            "download (the file changed on the server, or this copy is corrupt)")
    if release.sha256:
        return "pinned"
    return "recorded" if recorded is not None else release.trust


def fetch(release: Release, root: Path | None = None, log: Log | None = None,
          timeout: float = TIMEOUT_S) -> Downloaded:
    """The release file in the cache, downloaded (or resumed) if needed, its sha256 checked."""
    say = log or (lambda message: None)
    folder = downloads_dir(root)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ApucodecError(f"{folder}: cannot create the download folder ({exc.strerror or exc})") from None
    final = folder / release.file_name
    recorded = recorded_sha256(release, root)
    if final.is_file():
        digest = _sha256(final)
        try:
            trust = check_sha256(release, digest, recorded)
            if trust in ("first-use", "prefix"):  # its record was lost: this copy passed every check there is
                _record(release, digest, final.stat().st_size, folder)
            return Downloaded(final, digest, final.stat().st_size, trust, fetched=False)
        except ApucodecError:
            say(f"{final}: an earlier download fails its sha256 check; downloading it again")
            final.unlink()
    part = final.with_name(final.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    if start:
        say(f"resuming {release.url} at byte {start} ({part})")
    else:
        say(f"downloading {release.url}")
    _transfer(release, part, start, timeout, say)
    digest = _sha256(part)
    try:
        trust = check_sha256(release, digest, recorded)
    except ApucodecError as exc:
        part.unlink(missing_ok=True)
        raise ApucodecError(f"{exc}; the download was removed") from None
    size = part.stat().st_size
    os.replace(part, final)
    if trust == "first-use" or trust == "prefix":
        where = _record(release, digest, size, folder)
        say(f"no published sha256 for {release.name}: recorded this first download's sha256 {digest} in {where} "
            "(trust on first use); later downloads must match it")
    return Downloaded(final, digest, size, trust, fetched=True, resumed_from=start)


def _open(url: str, start: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"apucodec/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)  # noqa: S310


def _transfer(release: Release, part: Path, start: int, timeout: float, say: Log) -> None:
    """Append the rest of the file to `part` (or write it whole when the server ignores the range)."""
    url = release.url
    try:
        response = _open(url, start, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing after our bytes: the part is complete (its hash decides)
            return
        raise ApucodecError(f"{url}: the server answered HTTP {exc.code} {exc.reason}; nothing was downloaded"
                            + (f" (the {start} bytes in {part} are kept for the next pull)" if start else "")) \
            from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ApucodecError(f"{url}: cannot download ({reason}); nothing was written") from None
    with response:
        offset = start
        if start and response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != start:
                raise ApucodecError(f"{url}: the server resumed at another byte than {start} "
                                    f"({response.headers.get('Content-Range')!r}); nothing was written")
        elif start:
            offset = 0  # a 200 to a range request: the whole file again
            say(f"{url}: the server does not resume downloads; starting over")
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length and length.isdigit() else None
        received = _write_body(response, part, offset, url, _progress(say, expected))
    if expected is not None and received < expected:
        raise ApucodecError(_interrupted(release, part, received, expected, "the body ended early"))


def _progress(say: Log, total: int | None) -> Callable[[int], None]:
    """A callback saying how much has arrived, at every tenth of `total` (silent when the size is unknown)."""
    said = [-1]

    def report(received: int) -> None:
        if total:
            tenth = received * 10 // total
            if tenth > said[0]:
                said[0] = tenth
                say(f"  {received / 1e6:.1f} of {total / 1e6:.1f} MB")
    return report


def _write_body(response: http.client.HTTPResponse, part: Path, offset: int, url: str,
                progress: Callable[[int], None]) -> int:
    """Write the response body into `part` from `offset`; returns the part's size at the end."""
    received = offset
    handle = None
    try:
        while True:
            try:
                block = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise _Interrupted(str(exc) or type(exc).__name__) from None
            if not block:
                break
            if handle is None:  # created (or cut back) only once bytes arrive
                handle = open(part, "r+b" if offset and part.exists() else "wb")  # noqa: SIM115
                handle.seek(offset)
                handle.truncate()
            handle.write(block)
            received += len(block)
            progress(received)
        if handle is not None:
            handle.flush()
            os.fsync(handle.fileno())
    except _Interrupted as exc:
        _close(handle)
        kept = (f"they are kept in {part} and the next pull resumes there" if handle is not None or offset
                else "nothing was written")
        raise ApucodecError(f"{url}: download interrupted ({exc}) after {received} bytes; {kept}") from None
    except OSError as exc:
        _close(handle)
        part.unlink(missing_ok=True)
        what = "no space left for the download" if exc.errno in NO_SPACE else "cannot write the download"
        raise ApucodecError(f"{part.parent}: {what} ({exc.strerror or exc}); the partial file was removed") \
            from None
    except BaseException:
        _close(handle)  # Ctrl-C: what arrived stays in the part, for the next pull
        raise
    _close(handle)
    return received


def _close(handle: object) -> None:
    if handle is not None:
        with contextlib.suppress(OSError):
            handle.close()  # type: ignore[attr-defined]


def _interrupted(release: Release, part: Path, received: int, expected: int, why: str) -> str:
    return (f"{release.url}: download interrupted ({why}) after {received} of {expected} bytes; they are kept in "
            f"{part} and the next `apucodec pull {release.name}` resumes there")
