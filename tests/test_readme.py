"""README.md stays a user's document that tells the truth about the command line: at most 250 lines,
every `faceveil <command>` it shows exists, every `--flag` it shows is accepted by the command it is
used with (or, where no command is named beside it, by some command), and every link into docs/
(and every link between the docs/ pages, anchors included) points at something that exists.

The grammar is read from faceveil/cli/parser.py's build_parser (no subprocess: fast)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from faceveil.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_LINES = 250

COMMAND = re.compile(r"(?<![\w.-])faceveil\s+([a-z][a-z0-9-]*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def commands() -> dict[str, set[str]]:
    """{command (aliases too): its option strings} of the real parser."""
    parser = build_parser([])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: set(p._option_string_actions) for name, p in sub.choices.items()}


def code_pieces(text: str) -> list[tuple[int, str, bool]]:
    """(line number, text, continues the line before) of every fenced code line and inline code
    span. A fenced line that starts with white space and names no command continues the command of
    the line before it (a command wrapped over several lines)."""
    pieces, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            pieces.append((n, line, line[:1].isspace() and not COMMAND.search(line)))
        else:
            pieces.extend((n, m.group(2), False) for m in INLINE.finditer(line))
    return pieces


def uses(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str | None, str]]]:
    """The commands a text shows, as (line, command), and the flags, as (line, command or None, flag):
    a flag belongs to the nearest `faceveil <command>` before it in the same piece of code (or in the
    line it continues), to none where there is none."""
    shown, flags, current = [], [], None
    for n, piece, continues in code_pieces(text):
        if not continues:
            current = None
        marks = [(m.start(), m.group(1)) for m in COMMAND.finditer(piece)]
        shown.extend((n, c) for _, c in marks)
        for m in FLAG.finditer(piece):
            owner = [c for pos, c in marks if pos < m.start()]
            flags.append((n, owner[-1] if owner else current, m.group(1)))
        if marks:
            current = marks[-1][1]
    return shown, flags


def problems(text: str, grammar: dict[str, set[str]], others: bool = False) -> list[str]:
    """What is wrong with the commands and flags `text` shows. `others`: the text also shows other
    programs' command lines (dask, prefect, pip), so a flag no faceveil command names is not judged."""
    shown, flags = uses(text)
    out = [f"line {n}: `faceveil {c}` is not a command" for n, c in shown if c not in grammar]
    every = set().union(*grammar.values())
    for n, command, flag in flags:
        if command in grammar and flag not in grammar[command]:
            out.append(f"line {n}: `faceveil {command}` takes no {flag}")
        elif command is None and not others and flag not in every:
            out.append(f"line {n}: no command takes {flag}")
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"\]\([^)]*\)|[`*\[\]]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text, fenced, out = path.read_text(encoding="utf-8"), False, set()
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            out.add(slug(line.lstrip("#")))
    return out


def broken_links(page: Path, only_docs: bool) -> list[str]:
    out = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # http:, mailto:
            continue
        path, _, anchor = target.partition("#")
        if only_docs and not path.startswith("docs/"):
            continue
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            out.append(f"{page.name}: {target} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(f"{page.name}: {target}: no heading #{anchor} in {dest.name}")
    return out


@pytest.fixture(scope="module")
def grammar() -> dict[str, set[str]]:
    return commands()


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines (at most {MAX_LINES}): move detail into docs/"


def test_readme_keeps_the_two_commands():
    text = README.read_text(encoding="utf-8")
    for command in ("make demo", "make test"):
        assert re.search(rf"^{command}\b.*creates \.venv", text, re.M), (
            f"README.md: `{command}` and that it creates .venv"
        )


def test_readme_commands_and_flags_exist(grammar):
    text = README.read_text(encoding="utf-8")
    shown, flags = uses(text)
    assert len({c for _, c in shown}) >= 10 and len(flags) >= 30, "the README's commands were not found: parser broken?"
    assert problems(text, grammar) == []


def test_docs_commands_and_flags_exist(grammar):
    out = []
    for page in sorted(DOCS.glob("*.md")):
        out += [f"{page.name} {p}" for p in problems(page.read_text(encoding="utf-8"), grammar, others=True)]
    assert out == []


def test_readme_links_into_docs_exist():
    text = README.read_text(encoding="utf-8")
    assert any(t.startswith("docs/") for t in LINK.findall(text)), "README.md links to no page of docs/"
    assert broken_links(README, only_docs=True) == []


def test_docs_links_exist():
    out = [p for page in sorted(DOCS.glob("*.md")) for p in broken_links(page, only_docs=False)]
    assert out == []


def test_checker_catches_what_is_wrong(grammar):
    """The checks can fail: a made-up command, a flag a command does not take, a flag nobody takes."""
    bad = "\n".join(
        [
            "```sh",
            ".venv/bin/faceveil anonymise SRC DEST",
            "faceveil search DEST --probe P --all",
            "  --bogus-flag",
            "```",
            "and `--made-up` inline, `faceveil restore DEST OUT --all` fine",
        ]
    )
    assert problems(bad, grammar) == [
        "line 2: `faceveil anonymise` is not a command",
        "line 3: `faceveil search` takes no --all",
        "line 4: `faceveil search` takes no --bogus-flag",
        "line 6: no command takes --made-up",
    ]
