"""Stand-ins for the parts of pytest's Config that option and map resolution read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class FakeConfig:
    """Command line values by dest, ini values by name (a missing linelist ini is [])."""

    rootpath: Path
    options: dict[str, Any] = field(default_factory=dict)
    ini: dict[str, Any] = field(default_factory=dict)

    def getoption(self, dest: str) -> Any:
        return self.options.get(dest)

    def getini(self, dest: str) -> Any:
        return self.ini.get(dest, [])
