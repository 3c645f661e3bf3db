"""The registry of mechanism plugins, in the order the kernel calls their stages.

Adding a mechanism: write its module (config model, tables, stages, events, declared metrics; see
``base.py``), list its class here, and give the policy or scenario a field for its config.
"""

from __future__ import annotations

from .base import Mechanism, Metric, ShardContext
from .redlist import RedLists

REGISTRY: tuple[type[Mechanism], ...] = (RedLists,)


def check_all(sc) -> None:
    for plugin in REGISTRY:
        plugin.check(sc)


def compile_all(sc, params) -> tuple[tuple[type[Mechanism], object], ...]:
    """The active plugins of a scenario with their compiled tables, in registry order."""
    out = []
    for plugin in REGISTRY:
        c = plugin.compile(sc, params)
        if c is not None:
            out.append((plugin, c))
    return tuple(out)


__all__ = ["Mechanism", "Metric", "ShardContext", "REGISTRY", "check_all", "compile_all"]
