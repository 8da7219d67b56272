"""The README's 30-second example, taken from the README itself, runs and passes."""

from __future__ import annotations

import re
from pathlib import Path

from acceptance import Project

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(language: str, after: str) -> str:
    text = README.read_text()
    start = text.index(after)
    match = re.compile(rf"```{language}\n(.*?)```", re.DOTALL).search(text, start)
    assert match is not None, f"no ```{language} block after {after!r} in README.md"
    return match.group(1)


def test_readme_example_passes_on_amd64_and_arm64(project: Project) -> None:
    directory = project.path / "images" / "hello"
    directory.mkdir(parents=True)
    (directory / "Dockerfile").write_text(_block("dockerfile", "`images/hello/Dockerfile`"))
    (directory / "image.toml").write_text(_block("toml", "`images/hello/image.toml`"))
    (project.path / "tests").mkdir()
    (project.path / "tests" / "test_hello.py").write_text(_block("python", "`tests/test_hello.py`"))
    result = project.run("--platforms", "amd64,arm64", "-n", "2", "-v")
    # Two tests on two platforms, and the image's variants check (images/hello is reached).
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*hello*2 passed*2 passed*"])
