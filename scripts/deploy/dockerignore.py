"""What a Docker build context keeps, read from a `.dockerignore` file.

The rules are those of the Docker CLI and BuildKit (the moby
patternmatcher), restated here so that a test can see the context without a
Docker engine:

* Reading: a line whose first character is `#` is a comment; other lines
  are trimmed, blank ones skipped. A leading `!` marks an exception. The
  rest is cleaned like Go's `filepath.Clean`, and a leading `/` dropped
  (patterns are relative to the context root).
* Patterns follow Go's `filepath.Match` (`*` and `?` never cross `/`,
  `[...]` classes, `\\` escapes), plus `**`, which matches any number of
  directories, none included. An escaped character stands for itself.
* A path is excluded when the last pattern that matches it, or one of its
  parent directories, is not an exception: the last match wins, and an
  exception can bring back a file under an excluded directory.

Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

UTF8_BOM = "\ufeff"
# Characters that mean something to a regular expression but are plain in a
# filepath.Match pattern, so they are escaped when a pattern becomes a regex.
REGEX_ONLY_SPECIALS = set(".+()|{}$")


class PatternError(ValueError):
    """A pattern Docker would refuse (the build fails on it)."""


def go_clean(path: str) -> str:
    """Go's `filepath.Clean` on a slash-separated path."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def read_patterns(text: str) -> list[str]:
    """The pattern lines of a `.dockerignore` file, normalized as Docker
    reads them (exceptions keep their leading `!`)."""
    patterns = []
    for number, line in enumerate(text.splitlines()):
        if number == 0 and line.startswith(UTF8_BOM):
            line = line[len(UTF8_BOM) :]
        # The comment test comes before trimming: " # x" is a pattern.
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        exception = line.startswith("!")
        if exception:
            line = line[1:].strip()
        if line:
            line = go_clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append("!" + line if exception else line)
    return patterns


def check_match_syntax(pattern: str) -> None:
    """Raises PatternError where Go's filepath.Match would return
    ErrBadPattern: a trailing escape, an unclosed or empty class, or a
    class range with a missing end."""
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise PatternError(f"trailing backslash in {pattern!r}")
            i += 2
            continue
        if ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i >= n:
                    raise PatternError(f"unclosed [ in {pattern!r}")
                if pattern[i] == "]" and ranges > 0:
                    i += 1
                    break
                i = _class_char(pattern, i)
                if i < n and pattern[i] == "-":
                    i = _class_char(pattern, i + 1)
                ranges += 1
            continue
        i += 1


def _class_char(pattern: str, i: int) -> int:
    """Index after one character of a class (escapes included)."""
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise PatternError(f"bad character class in {pattern!r}")
    if pattern[i] == "\\":
        if i + 1 >= n:
            raise PatternError(f"trailing backslash in {pattern!r}")
        return i + 2
    return i + 1


@dataclass
class Pattern:
    """One compiled pattern.

    Most patterns never need a regular expression: a literal is compared
    as is, `prefix**` by prefix and `**suffix` by suffix. Docker takes the
    same shortcuts, and they decide a few corner cases (`**foo` matches
    `xfoo`), so they are kept rather than folded into the regex.
    """

    text: str
    exception: bool
    kind: str = "exact"  # exact | prefix | suffix | regex
    regex: re.Pattern[str] | None = field(default=None, repr=False)

    def matches(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None
        return self.regex.fullmatch(path) is not None


def compile_pattern(line: str) -> Pattern | None:
    """Compiles one pattern line (after read_patterns); None for blanks."""
    line = line.strip()
    if not line:
        return None
    line = go_clean(line)
    exception = line.startswith("!")
    if exception:
        if len(line) == 1:
            raise PatternError('illegal exception pattern: "!"')
        line = line[1:]
    check_match_syntax(line)
    pattern = Pattern(text=line, exception=exception)
    body = []
    kind = "exact"
    i, n = 0, len(line)
    first = True
    while i < n:
        ch = line[i]
        i += 1
        if ch == "*" and i < n and line[i] == "*":
            i += 1
            if i < n and line[i] == "/":
                i += 1
            if i >= n:
                if kind == "exact":
                    kind = "prefix"
                else:
                    body.append(".*")
                    kind = "regex"
            else:
                body.append("(.*/)?")
                kind = "regex"
            if first:
                kind = "suffix"
        elif ch == "*":
            body.append("[^/]*")
            kind = "regex"
        elif ch == "?":
            body.append("[^/]")
            kind = "regex"
        elif ch in REGEX_ONLY_SPECIALS:
            body.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                body.append(re.escape(line[i]))
                i += 1
                kind = "regex"
            else:
                body.append("\\\\")
        elif ch in "[]":
            body.append(ch)
            kind = "regex"
        else:
            body.append(ch)
        first = False
    pattern.kind = kind
    if kind == "regex":
        try:
            pattern.regex = re.compile("".join(body))
        except re.error as err:
            raise PatternError(f"bad pattern {line!r}: {err}") from err
    return pattern


@dataclass
class Matcher:
    patterns: list[Pattern]

    @classmethod
    def from_lines(cls, lines: list[str]) -> "Matcher":
        compiled = [compile_pattern(line) for line in lines]
        return cls([p for p in compiled if p is not None])

    @classmethod
    def from_text(cls, text: str) -> "Matcher":
        return cls.from_lines(read_patterns(text))

    def may_keep_under(self, directory: str) -> bool:
        """Whether an exception could bring back anything under an excluded
        `directory`, so that it must be walked. Conservative: it compares
        each exception's literal start (up to its first wildcard) with the
        directory."""
        directory = go_clean(directory) + "/"
        for pattern in self.patterns:
            if not pattern.exception:
                continue
            literal = re.split(r"[*?\[\\]", pattern.text, maxsplit=1)[0]
            if literal.startswith(directory) or directory.startswith(literal):
                return True
        return False

    def excluded(self, path: str) -> bool:
        """Whether the context leaves out `path` (slash-separated, relative
        to the context root)."""
        path = go_clean(path)
        if path == ".":
            return False
        parent = path.rsplit("/", 1)[0] if "/" in path else "."
        parents = parent.split("/") if parent != "." else []
        excluded = False
        for pattern in self.patterns:
            # An exclusion only matters while the path is kept, and an
            # exception only while it is excluded.
            if pattern.exception != excluded:
                continue
            hit = pattern.matches(path)
            if not hit:
                hit = any(
                    pattern.matches("/".join(parents[: depth + 1]))
                    for depth in range(len(parents))
                )
            if hit:
                excluded = not pattern.exception
        return excluded


def ignore_file_for(context: Path, dockerfile: Path) -> Path | None:
    """The ignore file BuildKit applies: `<Dockerfile>.dockerignore` beside
    the Dockerfile if there is one, else `.dockerignore` at the root."""
    specific = dockerfile.with_name(dockerfile.name + ".dockerignore")
    if specific.is_file():
        return specific
    root = context / ".dockerignore"
    return root if root.is_file() else None
