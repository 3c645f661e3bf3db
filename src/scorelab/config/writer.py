"""Writing a scenario back as a TOML scenario file (the inverse of loader.load_scenario)."""

from __future__ import annotations

from typing import Any

import tomli_w

from .models import Scenario


def _plain(x: Any) -> Any:
    """TOML has no null: drop None (every optional key defaults to None); tuples become arrays."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items() if v is not None}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def scenario_toml(sc: Scenario, header: str = "") -> str:
    """TOML text that loads back to an equal scenario; ``header`` lines are written as comments first."""
    text = tomli_w.dumps(_plain(sc.model_dump(mode="json")), multiline_strings=True)
    if header:
        text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + "\n" + text
    return text
