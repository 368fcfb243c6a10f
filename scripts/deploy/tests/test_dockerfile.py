"""The Dockerfile reader (scripts/deploy/dockerfile.py).

Run: python3 -m unittest discover -s scripts/deploy/tests
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dockerfile import DockerfileError, cargo_packages, context_uses, instructions  # noqa: E402

SAMPLE = """\
# syntax=docker/dockerfile:1
# A comment after the directives.
FROM rust:1 AS builder
COPY . .
RUN --mount=type=cache,target=/cache \\
    --mount=type=bind,source=Cargo.lock,target=/lock \\
    # a comment inside the continuation
    cargo build --release --locked -p one \\
      --package two --package=three \\
 && cargo test -p not-built-here-because-test
FROM scratch
COPY --from=builder /out/one /usr/local/bin/
COPY --chown=1:1 --chmod=0444 data/a.txt data/b.txt /data/
COPY ["with space/file", "/dest/"]
ADD https://example.invalid/file.tgz /tmp/
ADD local.tgz /opt/
"""


class Reading(unittest.TestCase):
    def test_instructions_join_continuations(self) -> None:
        found = [(i.line, i.keyword) for i in instructions(SAMPLE)]
        self.assertEqual(
            found,
            [(3, "FROM"), (4, "COPY"), (5, "RUN"), (11, "FROM"), (12, "COPY"), (13, "COPY"), (14, "COPY"), (15, "ADD"), (16, "ADD")],
        )

    def test_context_uses(self) -> None:
        uses = [(u.line, u.keyword, u.path) for u in context_uses(SAMPLE)]
        self.assertEqual(
            uses,
            [
                (4, "COPY", "."),
                (5, "RUN", "Cargo.lock"),
                (13, "COPY", "data/a.txt"),
                (13, "COPY", "data/b.txt"),
                (14, "COPY", "with space/file"),
                (16, "ADD", "local.tgz"),
            ],
        )

    def test_cargo_packages(self) -> None:
        self.assertEqual(cargo_packages(SAMPLE), ["one", "two", "three"])

    def test_backtick_escape(self) -> None:
        text = "# escape=`\nFROM x\nCOPY a `\n  b /dest/\n"
        self.assertEqual([u.path for u in context_uses(text)], ["a", "b"])

    def test_what_it_cannot_read_is_an_error(self) -> None:
        for text in [
            "FROM x\nCOPY <<EOF /a\nhello\nEOF\n",
            "FROM x\nARG DIR=a\nCOPY $DIR /a\n",
            "FROM x\nCOPY only-one\n",
            "FROM x\nCOPY [\"a\", 1]\n",
            "FROM x\nRUN echo \\\n",
        ]:
            with self.assertRaises(DockerfileError, msg=text):
                context_uses(text)


if __name__ == "__main__":
    unittest.main()
