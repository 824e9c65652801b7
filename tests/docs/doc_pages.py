"""Reading the documentation for the tests: pages, fenced blocks, commands, links, headings.

A page is every ``docs/*.md`` plus the top-level ``README.md``. A fenced block may sit in a
list item, indented; its indentation is removed. A block preceded (on the line before its
fence) by ``<!-- doc-test: skip REASON -->`` is left out, and the reason is kept for the
test's report.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[^`]*)$")
_SKIP = re.compile(r"<!--\s*doc-test:\s*skip\s+(?P<reason>.+?)\s*-->")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(?P<text>.+?)\s*#*\s*$")
_SEPARATORS = re.compile(r"\|\||&&|\||;")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    skip_reason: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def blocks(page: Path) -> list[Block]:
    found: list[Block] = []
    lines = page.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent = len(opening["indent"])
        language = opening["info"].strip().split(" ")[0].lower()
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith("```"):
            body.append(lines[end][indent:] if lines[end][:indent].isspace() else lines[end])
            end += 1
        previous = lines[index - 1] if index else ""
        skip = _SKIP.search(previous)
        found.append(
            Block(
                page, index + 1, language, "\n".join(body) + "\n", skip["reason"] if skip else None
            )
        )
        index = end + 1
    return found


def all_blocks(*languages: str) -> list[Block]:
    return [b for page in pages() for b in blocks(page) if b.language in languages]


def commands(block: Block) -> list[str]:
    """The command lines of a shell block: continuations joined, blank and comment lines gone."""
    lines: list[str] = []
    pending = ""
    for raw in block.text.splitlines():
        line = pending + raw
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        if line.strip() and not line.strip().startswith("#"):
            lines.append(line.strip())
    return lines


def programs(command: str) -> list[str]:
    """The program of each part of a pipeline or list (``a | b && c``), by its base name."""
    names = []
    for part in _SEPARATORS.split(command):
        try:
            words = shlex.split(part, comments=True)
        except ValueError:
            words = part.split()
        while words and "=" in words[0] and not words[0].startswith(("-", "/")):
            words = words[1:]  # VAR=value before the program
        if words:
            names.append(words[0].rsplit("/", 1)[-1])
    return names


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\*", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    in_fence = False
    for line in page.read_text().splitlines():
        if line.strip().startswith("```"):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            continue
        base = slug(match["text"])
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(page: Path) -> list[tuple[int, str]]:
    """Relative links of a page, outside code: (line, target)."""
    found = []
    in_fence = False
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        if line.strip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        without_code = re.sub(r"`[^`]*`", "", line)
        for match in _LINK.finditer(without_code):
            target = match["target"]
            if not re.match(r"^[a-z]+:", target):
                found.append((number, target))
    return found


def headings(page: Path) -> list[tuple[int, str]]:
    """(level, text) of each heading outside code, in order."""
    found = []
    in_fence = False
    for line in page.read_text().splitlines():
        if line.strip().startswith("```"):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(line)
        if match is not None:
            found.append((len(match.group(1)), match["text"]))
    return found
