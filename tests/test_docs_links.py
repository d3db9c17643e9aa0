"""Docs that hold: every relative link in the repository's Markdown resolves to a file inside the repository, and
no document points at paths outside it (a user's checkout has no `../shared/` or `/work/`)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|^\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
OUTSIDE = re.compile(r"\.\./shared|/work/|(?<![\w.])\.\./\.\./")


def markdown_files() -> list[Path]:
    """The project's own Markdown: not what tools put in hidden folders (venvs, .git, caches) or node_modules."""
    def ours(path: Path) -> bool:
        return not any(part.startswith(".") or part == "node_modules" for part in path.relative_to(ROOT).parts)

    return sorted(p for p in ROOT.rglob("*.md") if ours(p))


def test_there_are_docs_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    assert {"README.md", "docs/architecture.md", "docs/npu-guide.md"} <= names


def test_relative_links_resolve_inside_the_repository():
    bad = []
    for doc in markdown_files():
        for match in LINK.finditer(doc.read_text(encoding="utf-8")):
            target = (match.group(1) or match.group(2)).split("#", 1)[0]
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                continue
            resolved = (doc.parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                bad.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not bad, bad


def test_no_document_names_paths_outside_the_repository():
    bad = [f"{doc.relative_to(ROOT)}:{n}: {line.strip()[:100]}" for doc in markdown_files()
           for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1) if OUTSIDE.search(line)]
    assert not bad, bad


def test_readme_starts_with_the_two_commands():
    """A new user reads the two commands (set up and run; run the tests) before anything else."""
    headings = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
                if line.startswith("## ")]
    assert headings[0] == "## The two commands"
