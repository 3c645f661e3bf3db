"""The world without the policy, drawn from the run's own random numbers.

The counterfactual of an audited run is the same scenario with every rule's points set to 0, no
blacklists and no restrictions: nobody is penalised, so nobody is deterred, and nobody games a score.
Behaviour then follows each group's base rate (times any score curve, read at the constant start score).

Two ways to get it. For speech they agree exactly (tests check it, for every preset with speech); for a
behaviour whose candidate rate the policy raises (gaming: "below 1000 points, donate 3 times as often"),
the neutral scenario draws its candidates at the lower base rate, so ``full`` is a fresh sample of the same
counterfactual rather than the run's own candidates re-thinned: only ``fast`` keeps common random numbers
for bought behaviours.

* ``fast`` (default): the kernel draws each behaviour's candidate events from its own random stream,
  independent of the policy. Re-drawing only the streams of the behaviours we need (speech, bought
  behaviours) and thinning them with the counterfactual propensity gives the counterfactual's true events,
  day by day, with *common random numbers*: the same candidate events and the same uniforms as the run.
  It costs what those behaviours cost (well under a second for the default run).
* ``full``: simulate the neutralised scenario with the kernel (same seed, population and days). Slower,
  but it also holds if later kernel stages make behaviour depend on more than the score. It may use a
  smaller population (``population=``), which loses the common random numbers: rates are then compared
  per citizen-day, and the output says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..config.models import Scenario
from ..engine.kernel import shard_streams
from ..engine.sampling import Batches as _Batches
from ..engine.params import Params, compile_params
from ..engine.runner import plan_detail, plan_shards


def neutral_scenario(sc: Scenario, population: int | None = None) -> Scenario:
    """The scenario without the policy's consequences: 0 points, no blacklists, restrictions, deterrence, gaming."""
    data = sc.model_dump(mode="json")
    pol = data["policy"]
    for r in pol["rules"]:
        r["points"] = 0
    pol["blacklists"] = []
    pol["restrictions"] = []
    if "privileges" in pol:
        pol["privileges"] = []
    for b in data["behaviours"]:  # no list or privilege left to require: nobody is gated (as in `fast`)
        for key in ("requires_listed", "requires_privilege"):
            if b.get(key) is not None:
                b[key] = None
    gov = pol.get("governance") or {}
    gov["contexts"] = {k: v for k, v in (gov.get("contexts") or {}).items() if any(r["behaviour"] == k for r in pol["rules"])}
    pol["governance"] = gov
    data["response"]["deterrence"]["factor"] = 1.0
    data["response"]["gaming"] = []
    if population:
        data["scenario"]["population"] = int(population)
    return Scenario.model_validate(data)


def _cf_probability(params: Params, b: int) -> np.ndarray:
    """[G] counterfactual daily probability of behaviour b: base rate times score curves at the start score."""
    m = 1.0
    for xs, ys in params.curves[b]:
        m *= float(np.interp(params.start_score, xs, ys))
    return np.minimum(1.0, params.rate[b] * m)


def fast_cannot(params: Params, behaviours: list[str]) -> str | None:
    """Why re-thinning the run's candidates at the base rate would not give these behaviours' counterfactual
    (their propensity depends on more than the score, even without the policy), or None."""
    bidx = {name: i for i, name in enumerate(params.behaviours)}
    need = {bidx[n] for n in behaviours if n in bidx}
    parts = []
    if params.het is not None and any(params.het[b] > 0 for b in need):
        parts.append("per-citizen propensities, behaviours[].heterogeneity")
    conf = params.plugin("conformity")
    if conf is not None and any(b in need and imit > 0 for b, _, _, imit, _ in conf.entries):
        parts.append("imitation of contacts, response.conformity")
    return "; ".join(parts) or None


def fast_true_events(params: Params, seed: int, behaviours: list[str]) -> dict[str, np.ndarray]:
    """Counterfactual true events per behaviour as [T, G] counts, from the run's own candidate streams."""
    T, G = params.days, params.n_groups
    out = {name: np.zeros((T, G), dtype=np.int64) for name in behaviours}
    if not behaviours:
        return out
    specs = plan_shards(params.population, seed, plan_detail(params.population, "none"))
    bidx = {name: i for i, name in enumerate(params.behaviours)}
    for spec in specs:
        gens = shard_streams(spec.seed, spec.index, params)
        sizes = gens["groups"].multinomial(spec.size, params.shares).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        for name in behaviours:
            b = bidx[name]
            batches = _Batches(gens[f"b:{name}"], params.pmax[b], starts, sizes, T, 2)
            p_cf = _cf_probability(params, b)
            exact = np.all(p_cf >= params.pmax[b])  # every candidate is accepted
            for t in range(T):
                ids, grp, (u_acc, _) = batches.day(t)
                if not exact and len(grp):
                    grp = grp[u_acc * params.pmax[b][grp] < p_cf[grp]]
                out[name][t] += np.bincount(grp, minlength=G)
    return out


def full_true_events(sc: Scenario, seed: int, behaviours: list[str], population: int | None = None,
                     workers: int | None = 1) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Counterfactual true events per behaviour as [T, G] counts by simulating the neutral scenario."""
    from ..engine.runner import merge_metrics, run_shards

    neutral = neutral_scenario(sc, population)
    params = compile_params(neutral)
    specs = plan_shards(params.population, seed, plan_detail(params.population, "none"))
    results = run_shards(params, specs, workers=workers or 1)
    sizes, merged = merge_metrics(params, results)
    return {name: merged[f"true_{name}"] for name in behaviours}, sizes


def counterfactual_events(sc: Scenario, seed: int, behaviours: list[str], mode: str = "fast",
                          population: int | None = None) -> dict[str, Any]:
    """Counterfactual true events per behaviour as a long table (day, group, behaviour, events, population).

    Returns {"table": DataFrame, "method": str, "common_random_numbers": bool, "population": int}.
    """
    params = compile_params(sc)
    groups = list(params.groups)
    why_full = fast_cannot(params, behaviours) if mode == "fast" else None
    if mode == "fast" and population is None and why_full is None:
        events = fast_true_events(params, seed, behaviours)
        sizes = None
        method = ("fast: the run's own candidate streams re-thinned without deterrence or gaming "
                  "(common random numbers, same seed, population and days)")
        crn, pop = True, params.population
    else:
        events, sizes = full_true_events(sc, seed, behaviours, population)
        pop = int(population or params.population)
        crn = population is None or int(population) == params.population
        method = ((f"full, since the fast path cannot reproduce {why_full}: " if why_full else "full: ")
                  + f"the neutral scenario simulated with the same seed for {pop:,} citizens and "
                  f"{params.days} days" + (" (common random numbers for speech; gamed behaviours are drawn "
                                            "afresh at their base rate)" if crn else
                                            f" (a smaller population than the run's {params.population:,}: "
                                            "no common random numbers; compare rates per citizen-day)"))
    rows = []
    for name, arr in events.items():
        T, G = arr.shape
        full = np.concatenate([arr, arr.sum(axis=1, keepdims=True)], axis=1)
        rows.append(pd.DataFrame({
            "day": np.repeat(np.arange(T), G + 1),
            "group": np.tile(groups + ["all"], T),
            "behaviour": name,
            "events": full.reshape(-1),
        }))
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["day", "group", "behaviour", "events"])
    if sizes is not None:
        gsize = dict(zip(groups, map(int, sizes)))
        gsize["all"] = int(np.sum(sizes))
        table["population"] = table["group"].map(gsize)
    return {"table": table, "method": method, "common_random_numbers": crn, "population": pop,
            "group_sizes": None if sizes is None else dict(zip(groups, map(int, sizes)))}
