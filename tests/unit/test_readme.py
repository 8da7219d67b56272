"""The README's reference tables follow the code: every option of the option table, and every
image.toml key, is documented."""

from __future__ import annotations

import re
import tomllib
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


ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "harness" / "pytest_multiarch"


def _map() -> str:
    start = README.index("## Where things live")
    return README[start : README.index("\n## ", start + 1)]


def _modules() -> set[str]:
    """Every module of the package, as the map names it: the package's own ``__init__`` (the
    public API) counts, a subpackage's (a docstring at most) does not."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py" and path.parent != PACKAGE:
            continue
        found.add(path.relative_to(ROOT).as_posix())
    return found


def test_the_map_names_every_module_and_only_paths_that_exist() -> None:
    named = set(re.findall(r"`(harness/[^`\s]+)`", _map()))
    missing = sorted(_modules() - named)
    gone = sorted(path for path in named if not (ROOT / path).exists())
    problems = []
    if missing:
        problems.append(
            "modules missing from README.md's 'Where things live' table (add a row "
            "'| `PATH` | what lives there |' under its layer):\n  " + "\n  ".join(missing)
        )
    if gone:
        problems.append(
            "paths in README.md's 'Where things live' that do not exist:\n  " + "\n  ".join(gone)
        )
    assert not problems, "\n".join(problems)


def test_the_maps_layer_diagram_is_the_import_linter_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = (c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    contracted = [
        " ".join(layer.replace("pytest_multiarch.", "").split()) for layer in contract["layers"]
    ]
    block = re.search(r"```text\n(.*?)```", _map(), re.DOTALL)
    assert block is not None, "no ```text layer diagram in 'Where things live'"
    # Each line: the layer, then two spaces or more, then what it holds.
    drawn = [re.split(r"\s{2,}", line.strip())[0] for line in block.group(1).splitlines()]
    assert drawn == contracted


def test_the_map_lists_modules_top_layer_first() -> None:
    """The table follows the diagram: a module's row comes after every row of a layer above."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = (c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    rank = {}
    for index, layer in enumerate(contract["layers"]):
        for name in re.split(r"[|:]", layer):
            rank[name.strip().replace("pytest_multiarch.", "")] = index
    rows = re.findall(r"^\| `harness/pytest_multiarch/([^`]+)` \|", _map(), re.MULTILINE)
    ranks = []
    for row in rows:
        top = row.split("/")[0].removesuffix(".py")
        ranks.append(rank.get(top, -1))  # the package's __init__: above every layer
    out_of_order = [rows[i] for i in range(1, len(rows)) if ranks[i] < max(ranks[:i])]
    assert not out_of_order, f"rows above their layer: {out_of_order}"
