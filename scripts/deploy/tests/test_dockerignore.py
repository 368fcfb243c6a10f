"""The .dockerignore reader and matcher (scripts/deploy/dockerignore.py).

Each table row is a case Docker's own rules decide; the comment says which
rule. Run: python3 -m unittest discover -s scripts/deploy/tests
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dockerignore import Matcher, PatternError, go_clean, read_patterns  # noqa: E402


class GoClean(unittest.TestCase):
    def test_cases(self) -> None:
        cases = [
            ("", "."),
            (".", "."),
            ("a/", "a"),
            ("./a//b/./c/", "a/b/c"),
            ("a/../b", "b"),
            ("a/../..", ".."),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("//a", "/a"),
            ("/", "/"),
        ]
        for path, want in cases:
            self.assertEqual(go_clean(path), want, path)


class Reading(unittest.TestCase):
    def test_lines(self) -> None:
        text = "\ufeff# comment\n\n  target/  \n #not-a-comment\n!  keep/me/ \n/rooted\n./dot\na/../b\n!\n"
        self.assertEqual(
            read_patterns(text),
            ["target", "#not-a-comment", "!keep/me", "rooted", "dot", "b", "!"],
        )

    def test_bad_patterns_are_refused(self) -> None:
        for bad in ["!", "[", "a[", "[]a]", "[a-]", "a\\"]:
            with self.assertRaises(PatternError, msg=bad):
                Matcher.from_lines([bad])


class Matching(unittest.TestCase):
    # (patterns, path, excluded?, why)
    CASES = [
        (["target/"], "target/debug/x", True, "a directory excludes what is under it"),
        (["target/"], "target", True, "and itself"),
        (["target/"], "libs/target/x", False, "a pattern is anchored at the root"),
        (["target/"], "targets", False, "whole names only"),
        (["/target"], "target/x", True, "a leading slash is dropped"),
        (["**/target/"], "target/x", True, "** matches no directory"),
        (["**/target/"], "libs/a/target/x", True, "or several"),
        (["**target"], "xtarget", True, "**name is a suffix match"),
        (["*.log"], "a.log", True, "* matches within a name"),
        (["*.log"], "dir/a.log", False, "* never crosses /"),
        (["**/*.log"], "dir/sub/a.log", True, "**/ crosses directories"),
        (["docs/**"], "docs/a/b", True, "name/** matches what is under it"),
        (["docs/**"], "docs", False, "but not the directory itself"),
        (["a?c"], "abc", True, "? is one character"),
        (["a?c"], "a/c", False, "but never /"),
        (["[ab].txt"], "b.txt", True, "classes"),
        (["[^ab].txt"], "b.txt", False, "negated classes"),
        (["[a-c]x"], "cx", True, "ranges"),
        (["\\*.txt"], "*.txt", True, "an escaped wildcard is literal"),
        (["\\*.txt"], "a.txt", False, "and matches only itself"),
        (["a.b"], "axb", False, "a dot is literal"),
        (["a+(b)"], "a+(b)", True, "regex characters are literal"),
        ([" #not-a-comment"], "#not-a-comment", True, "an indented # is a pattern"),
        (["#comment"], "#comment", False, "a # in the first column is a comment"),
        (["perf/", "!perf/loadgen/"], "perf/README.md", True, "the directory stays excluded"),
        (["perf/", "!perf/loadgen/"], "perf/loadgen/src/main.rs", False, "an exception brings a subtree back"),
        (["perf/", "!perf/loadgen/"], "perf/loadgen", False, "and the directory itself"),
        (["!keep.txt", "*.txt"], "keep.txt", True, "the last match wins"),
        (["*.txt", "!keep.txt"], "keep.txt", False, "in either order"),
        (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True, "a later exclusion beats an exception"),
        (["*.md", "!README*.md", "README-secret.md"], "README.md", False, "which still holds elsewhere"),
        (["**"], "anything/at/all", True, "** alone matches everything"),
        (["**", "!src"], "src/main.rs", False, "and yields to an exception"),
        ([], "anything", False, "no patterns keep everything"),
    ]

    def test_cases(self) -> None:
        for patterns, path, excluded, why in self.CASES:
            matcher = Matcher.from_text("\n".join(patterns))
            self.assertEqual(matcher.excluded(path), excluded, f"{patterns} {path}: {why}")

    def test_the_root_is_never_excluded(self) -> None:
        self.assertFalse(Matcher.from_text("**\n*\n").excluded("."))

    def test_walk_pruning_is_conservative(self) -> None:
        matcher = Matcher.from_text("perf/\n!perf/loadgen/\n.git/\n")
        self.assertTrue(matcher.may_keep_under("perf"))
        self.assertFalse(matcher.may_keep_under("perf/k6"))
        self.assertFalse(matcher.may_keep_under(".git"))
        self.assertTrue(Matcher.from_text("a/\n!**/keep\n").may_keep_under("a"))


if __name__ == "__main__":
    unittest.main()
