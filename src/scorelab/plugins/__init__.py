"""The registry of mechanism plugins: the order the kernel constructs them and calls each of their stages.

Adding a mechanism: write its module (config, tables, stages, events, declared metrics; see ``base.py``),
list its class here, and give the policy or scenario a field for its config.

The order matters where mechanisms meet: the graphs come first (others read them: conformity too); blocked attempts are
refused before sub-score events are set apart (both in ``observe``); listings from before the run are drawn
(``pre_score``, day 0) and set (``apply``) before removals and extensions; due process filters the day's
observations before money is counted on what scores; reversals apply before the composite's monthly
update and the peer ratings, which set the score from their own state; red lists see the final points; the
lender comes last (its loan outcomes add to the day's score before the score range clips it).
"""

from __future__ import annotations

from .base import Mechanism, Metric
from .blocks import Blocks
from .caps import Caps
from .composite import Composite
from .conformity import Conformities
from .consequences import Consequences
from .due_process import DueProcess
from .graphs import Graphs
from .lending import Lending
from .lists import Lists
from .money import Money
from .peer import Peer
from .privileges import Privileges
from .redlist import RedLists

REGISTRY: tuple[type[Mechanism], ...] = (Graphs, Lists, Privileges, Blocks, Consequences, Conformities, DueProcess, Caps, Money,
                                         Composite, Peer, RedLists, Lending)


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


__all__ = ["Mechanism", "Metric", "REGISTRY", "check_all", "compile_all"]
