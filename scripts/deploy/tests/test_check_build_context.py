"""scripts/deploy/check_build_context.py end to end, on a small workspace
made in a temporary folder: the checks pass on a good context and name
what is missing from a bad one. Needs cargo (offline; the workspace has no
dependencies).

Run: python3 -m unittest discover -s scripts/deploy/tests
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import unittest
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from check_build_context import run  # noqa: E402

FILES = {
    "Cargo.toml": '[workspace]\nresolver = "3"\nmembers = ["app", "bench/gen"]\n',
    "app/Cargo.toml": '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2024"\n',
    "app/src/main.rs": 'const SCHEMA: &str = include_str!("../../sql/schema.sql");\nfn main() { print!("{SCHEMA}"); }\n',
    "app/src/tests.rs": 'const FIXTURE: &str = include_str!("../../testdata/only-for-tests.txt");\n',
    "bench/gen/Cargo.toml": '[package]\nname = "gen"\nversion = "0.1.0"\nedition = "2024"\n',
    "bench/gen/src/main.rs": "fn main() {}\n",
    "bench/report.txt": "numbers\n",
    "sql/schema.sql": "select 1;\n",
    "testdata/only-for-tests.txt": "x\n",
    "static/index.html": "<p>hi</p>\n",
    "deploy/docker/app.Dockerfile": (
        "FROM rust:1 AS builder\nCOPY . .\nRUN cargo build --release --locked -p app\n"
        "FROM scratch\nCOPY static /static\nCOPY --from=builder /out/app /app\n"
    ),
}
GOOD_IGNORE = "deploy/\nbench/\n!bench/gen\ntestdata/\n"


class EndToEnd(unittest.TestCase):
    def setUp(self) -> None:
        if shutil.which("cargo") is None:
            self.skipTest("cargo is not on PATH")
        self.root = Path(tempfile.mkdtemp(prefix="pecr-context-test-"))
        self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)
        for name, text in FILES.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        # The lock file cargo would write for this dependency-free workspace.
        (self.root / "Cargo.lock").write_text(
            "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\n"
            "[[package]]\nname = \"gen\"\nversion = \"0.1.0\"\n"
        )

    def failures(self, ignore: str) -> list[str]:
        (self.root / ".dockerignore").write_text(ignore)
        return run(self.root, keep=False).failures

    def test_a_good_context_passes(self) -> None:
        self.assertEqual(self.failures(GOOD_IGNORE), [])

    def test_an_excluded_member_fails_cargo_metadata(self) -> None:
        failures = self.failures("deploy/\nbench/\n")
        self.assertEqual(len(failures), 1, failures)
        self.assertIn("cargo metadata in the context of .dockerignore failed", failures[0])
        self.assertIn("bench/gen", failures[0])

    def test_a_missing_copy_source_is_named(self) -> None:
        failures = self.failures(GOOD_IGNORE + "static/\n")
        self.assertEqual(failures, ["deploy/docker/app.Dockerfile:5: COPY static: not in the build context"])

    def test_a_missing_compile_time_input_is_named(self) -> None:
        failures = self.failures(GOOD_IGNORE + "*.sql\n**/*.sql\n")
        self.assertEqual(
            failures,
            ["deploy/docker/app.Dockerfile: sql/schema.sql (compiled in by app/src/main.rs): not in the build context"],
        )

    def test_a_missing_lock_file_is_named(self) -> None:
        failures = self.failures(GOOD_IGNORE + "Cargo.lock\n")
        self.assertEqual(failures, [".dockerignore: Cargo.lock is not in the build context"])

    def test_an_unknown_package_is_named(self) -> None:
        dockerfile = self.root / "deploy/docker/app.Dockerfile"
        dockerfile.write_text(dockerfile.read_text().replace("-p app", "-p app -p nope"))
        failures = self.failures(GOOD_IGNORE)
        self.assertEqual(failures, ["deploy/docker/app.Dockerfile: cargo build -p nope: no such workspace package"])

    def test_a_dockerfile_specific_ignore_file_wins(self) -> None:
        (self.root / "deploy/docker/app.Dockerfile.dockerignore").write_text("static/\n" + GOOD_IGNORE)
        failures = self.failures(GOOD_IGNORE)
        self.assertEqual(failures, ["deploy/docker/app.Dockerfile:5: COPY static: not in the build context"])


if __name__ == "__main__":
    unittest.main()
