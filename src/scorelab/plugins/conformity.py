"""Conformity through the social graph: what one's contacts do, and what happens to them, shifts one's own
propensity (imitation, and deterrence by example).

Config, one block per behaviour (``[[response.conformity]]``; the network comes from ``[graph]``)::

    [[response.conformity]]
    behaviour = "criticise_government"
    network = "friends"     # a [[graph.networks]] name, or "household" (the other members)
    days = 30               # what contacts did, or suffered, within the last `days` days
    imitation = 1.0         # x (1 + imitation x share of contacts who did it)
    deterrence = 3.0        # / (1 + deterrence x share of contacts penalised for it)

A candidate's multiplier (the state at the start of the day, as every propensity) is
``(1 + imitation x a) / (1 + deterrence x p)``, with ``a`` the share of their contacts with a true event of
the behaviour in the last ``days`` days and ``p`` the share penalised for it (an observed event of a rule
with negative points, false attributions included: a contact cannot tell a false match from a true one).
Imitation is the peer effect of the crime and participation literature (people do what their circle does);
deterrence by example is the general deterrence of seeing others punished (the chilling effect spreads
through who one knows). Both sizes are the scenario's stated assumptions; 0 switches a part off.

No randomness of its own: it thins the candidates every policy sees (common random numbers hold), so a
comparison with and without it differs only by what conformity does. Cost follows candidates x degree.

Metrics, both over the day's true events: ``conformity_imitating_<behaviour>`` (by citizens with a contact
who did it in the window) and ``conformity_warned_<behaviour>`` (by citizens with a contact penalised for it
in the window: who acted although they had seen an example).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import Field

from ..config.strict import StrictModel
from .base import Mechanism, Metric

_Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$")]
NEVER = np.iinfo(np.int32).min // 2


class Conformity(StrictModel):
    """Contacts' behaviour and sanctions shift a citizen's propensity for one behaviour."""

    behaviour: _Name
    network: _Name = Field(description='a [[graph.networks]] name, or "household"')
    days: int = Field(30, ge=1, le=20_000, description="window on what contacts did or suffered")
    imitation: float = Field(0.0, ge=0.0, le=100.0, allow_inf_nan=False,
                             description="propensity x (1 + imitation x share of contacts who did it)")
    deterrence: float = Field(0.0, ge=0.0, le=1000.0, allow_inf_nan=False,
                              description="propensity / (1 + deterrence x share of contacts penalised for it)")


@dataclass(frozen=True)
class ConformityTables:
    entries: tuple[tuple[int, str, int, float, float], ...]  # (behaviour, network, days, imitation, deterrence)
    names: tuple[str, ...]  # behaviour names, per entry


def contact_share(indptr: np.ndarray, indices: np.ndarray, ids: np.ndarray, flag: np.ndarray,
                  at_least: int | None = None) -> np.ndarray:
    """Share of each citizen's contacts (CSR) for whom ``flag`` holds (with ``at_least``: for whom
    ``flag >= at_least``, read for those contacts only); 0 for a citizen without contacts."""
    lo, hi = indptr[ids], indptr[ids + 1]
    deg = hi - lo
    total = int(deg.sum())
    if total == 0:
        return np.zeros(len(ids))
    owner = np.repeat(np.arange(len(ids)), deg)
    pos = np.arange(total) - np.repeat(np.cumsum(deg) - deg, deg) + np.repeat(lo, deg)
    v = flag[indices[pos]]
    hits = np.bincount(owner, weights=v >= at_least if at_least is not None else v, minlength=len(ids))
    return hits / np.maximum(deg, 1)


def household_csr(start: np.ndarray, household: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Contacts = the other members of one's household, as CSR arrays."""
    size = np.diff(start)[household]  # [n] size of each citizen's household
    deg = (size - 1).astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(deg)]).astype(np.int64)
    n = len(household)
    owner = np.repeat(np.arange(n), deg)
    first = start[household][owner]
    k = np.arange(int(deg.sum())) - np.repeat(indptr[:-1], deg)  # 0..size-2 for each owner
    member = first + k
    member = np.where(member >= owner, member + 1, member)  # skip oneself
    return indptr, member.astype(np.int32)


class Conformities(Mechanism):
    name = "conformity"
    config = "response.conformity"

    @staticmethod
    def check(sc) -> None:
        behaviours = {b.name for b in sc.behaviours}
        nets = {n.name for n in sc.graph.networks} if sc.graph else set()
        has_households = bool(sc.graph and sc.graph.households)
        seen = set()
        for i, c in enumerate(sc.response.conformity):
            where = f"response.conformity[{i}]"
            if c.behaviour not in behaviours:
                raise ValueError(f"{where}.behaviour: unknown behaviour {c.behaviour!r}; allowed: "
                                 f"{', '.join(sorted(behaviours))}")
            if c.behaviour in seen:
                raise ValueError(f"{where}.behaviour: a second block for {c.behaviour!r}; give one per behaviour")
            seen.add(c.behaviour)
            allowed = sorted(nets) + (["household"] if has_households else [])
            if c.network not in allowed:
                raise ValueError(f"{where}.network: unknown network {c.network!r}; allowed: "
                                 + (", ".join(allowed) or "none (add [[graph.networks]] or [graph.households])"))
            if c.imitation == 0 and c.deterrence == 0:
                raise ValueError(f"{where}: imitation and deterrence are both 0; give one of them above 0")

    @staticmethod
    def compile(sc, params) -> ConformityTables | None:
        if not sc.response.conformity:
            return None
        b = list(params.behaviours)
        entries = tuple((b.index(c.behaviour), c.network, c.days, c.imitation, c.deterrence)
                        for c in sc.response.conformity)
        return ConformityTables(entries, tuple(c.behaviour for c in sc.response.conformity))

    @staticmethod
    def metrics(c: ConformityTables, params) -> list[Metric]:
        out = []
        for (b, net, days, imit, deter), name in zip(c.entries, c.names):
            if imit > 0:
                out.append(Metric(f"conformity_imitating_{name}", "count", "events",
                                  f"true events of {name} by citizens with a {net} contact who did it in the last {days} days"))
            if deter > 0:
                out.append(Metric(f"conformity_warned_{name}", "count", "events",
                                  f"true events of {name} by citizens with a {net} contact penalised for it in the last "
                                  f"{days} days"))
        return out

    @staticmethod
    def max_multiplier(c: ConformityTables, b: int) -> float:
        return float(np.prod([1.0 + imit for bb, _, _, imit, _ in c.entries if bb == b]))

    @staticmethod
    def citizen_bytes(c: ConformityTables) -> float:
        return sum(4.0 * ((imit > 0) + (deter > 0)) for _, _, _, imit, deter in c.entries)

    def __init__(self, c: ConformityTables, S):
        super().__init__(c, S)
        graphs = S.plugins["graphs"]
        self.csr: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for _, net, _, _, _ in c.entries:
            if net in self.csr:
                continue
            if net == "household":
                hh = graphs.households
                self.csr[net] = household_csr(hh.start, hh.household)
            else:
                nw = graphs.networks[net]
                self.csr[net] = (nw.indptr, nw.indices)
        self.did = {k: np.full(S.n, NEVER, dtype=np.int32) for k, e in enumerate(c.entries) if e[3] > 0}
        self.hit = {k: np.full(S.n, NEVER, dtype=np.int32) for k, e in enumerate(c.entries) if e[4] > 0}
        self.by_b = {e[0]: k for k, e in enumerate(c.entries)}

    def propensity_behaviours(self) -> list[int]:
        return sorted(self.by_b)

    def _shares(self, k: int, ids: np.ndarray, last: np.ndarray, t: int) -> np.ndarray:
        _, net, days, _, _ = self.c.entries[k]
        indptr, indices = self.csr[net]
        return contact_share(indptr, indices, ids, last, at_least=t - days)  # cost: these citizens' contacts

    def propensity(self, b, ids, S, t) -> np.ndarray:
        k = self.by_b[b]
        _, _, _, imit, deter = self.c.entries[k]
        m = np.ones(len(ids))
        if not len(ids):
            return m
        if imit > 0:
            m *= 1.0 + imit * self._shares(k, ids, self.did[k], t)
        if deter > 0:
            m /= 1.0 + deter * self._shares(k, ids, self.hit[k], t)
        return m

    def end_day(self, S, D) -> None:
        """Today's events enter what contacts will have seen from tomorrow on."""
        t = D.t
        for k, (b, _, _, imit, deter) in enumerate(self.c.entries):
            ids, grp, _ = D.acted[b]
            if not len(ids):
                continue
            if deter > 0:
                p = self._shares(k, ids, self.hit[k], t)
                S.metrics[f"conformity_warned_{self.c.names[k]}"][t] += np.bincount(grp[p > 0], minlength=S.G)
            if imit > 0:
                a = self._shares(k, ids, self.did[k], t)
                S.metrics[f"conformity_imitating_{self.c.names[k]}"][t] += np.bincount(grp[a > 0], minlength=S.G)
                self.did[k][ids] = t
        if not self.hit:
            return
        for bb, ids, _false in D.obs:
            k = self.by_b.get(bb)
            if k is not None and k in self.hit and S.P.penalised[bb] and len(ids):
                self.hit[k][ids] = t
