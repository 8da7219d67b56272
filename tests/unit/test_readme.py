"""The README's reference tables follow the code: every option of the option table, and every
image.toml key, is documented."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_multiarch.core.images import _KNOWN_KEYS
from pytest_multiarch.run.options import OPTIONS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(title)
    end = README.index("\n### ", start + len(title))
    return README[start:end]


def test_every_option_is_in_the_options_table() -> None:
    table = _section("### Options")
    rows = [line for line in table.splitlines() if line.startswith("| `--")]
    documented = {re.match(r"\| `(--[a-z-]+)", row).group(1) for row in rows}  # type: ignore[union-attr]
    assert documented == {option.flag for option in OPTIONS}
    for option in OPTIONS:
        row = next(r for r in rows if r.startswith(f"| `{option.flag}"))
        assert f"`{option.dest}`" in row
        if option.env:
            assert f"`{option.env}`" in row
        if option.default and option.kind == "value" and option.name != "images":
            assert f"`{option.default}`" in row


def test_every_image_toml_key_is_documented() -> None:
    table = _section("### `image.toml`")
    for key in _KNOWN_KEYS:
        assert f"| `{key}` |" in table or f"| `[{key}]` |" in table, key
