"""A longer Mesa-vs-scorelab agreement check on RR-1 than the test suite can afford.

    python benchmarks/crosscheck_rr1.py                       # 20,000 x 1,000 days, 2 Mesa and 20 scorelab runs
    python benchmarks/crosscheck_rr1.py -n 5000 -t 400 --mesa-reps 3 --scorelab-reps 30

For every group it compares event totals (whole run and per 365-day window, so the first, second and
post-blacklist-expiry years are seen apart) and the mean score and restricted share on selected days
(including the days around 730, when the first blacklist entries expire). Each line is a z-score:
(mean of Mesa runs - mean of scorelab runs) / (scorelab replicate SD x sqrt(1/n_mesa + 1/n_scorelab)).
Seeds: Mesa 700.., scorelab 5000.. . Prints the table and the largest |z|; exits 1 if it exceeds --z.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import mesa_rr1  # noqa: E402
import scorelab  # noqa: E402

COUNTS = ("penalties", "wrongful_penalties", "criticism")


def summarise(df: pd.DataFrame, days: list[int], windows: list[tuple[int, int]]) -> dict:
    out = {}
    for g, d in df.groupby("group", observed=True):
        d = d.set_index("day")
        for m in COUNTS:
            out[(m, g, "total")] = d[m].sum()
            for a, b in windows:
                out[(m, g, f"days {a}-{b - 1}")] = d.loc[a:b - 1, m].sum()
        for t in days:
            out[("mean_score", g, f"day {t}")] = d.loc[t, "mean_score"]
            out[("restricted_share", g, f"day {t}")] = d.loc[t, "restricted_share"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--population", "-n", type=int, default=20_000)
    ap.add_argument("--days", "-t", type=int, default=1_000)
    ap.add_argument("--mesa-reps", type=int, default=2)
    ap.add_argument("--scorelab-reps", type=int, default=20)
    ap.add_argument("--z", type=float, default=4.0, help="largest |z| accepted (default 4)")
    a = ap.parse_args(argv)
    if min(a.population, a.days, a.mesa_reps) < 1 or a.scorelab_reps < 2:
        ap.error("--population, --days and --mesa-reps must be at least 1, --scorelab-reps at least 2")
    T = a.days
    days = sorted({t for t in (0, 99, 364, 728, 729, 730, 731, 800, T - 1) if t < T})
    windows = [(s, min(s + 365, T)) for s in range(0, T, 365)]
    with tempfile.TemporaryDirectory() as tmp:
        sl = [summarise(scorelab.simulate("rr1", seed=5000 + s, out=Path(tmp) / f"s{s}", population=a.population,
                                          days=T, ledger="none", workers=1).metrics, days, windows)
              for s in range(a.scorelab_reps)]
    me = [summarise(mesa_rr1.run_mesa_rr1(a.population, T, seed=700 + s), days, windows) for s in range(a.mesa_reps)]
    rows = []
    for k in sl[0]:
        x = np.array([r[k] for r in me], float)
        y = np.array([r[k] for r in sl], float)
        se = y.std(ddof=1) * np.sqrt(1 / len(x) + 1 / len(y))
        rows.append((*k, x.mean(), y.mean(), (x.mean() - y.mean()) / se if se > 0 else float("nan")))
    df = pd.DataFrame(rows, columns=["metric", "group", "when", "mesa", "scorelab", "z"])
    with pd.option_context("display.width", 200, "display.max_rows", 1000, "display.float_format", "{:.4f}".format):
        print(df.to_string(index=False))
    worst = df["z"].abs().max()
    print(f"{a.population:,} citizens x {T} days, {a.mesa_reps} Mesa and {a.scorelab_reps} scorelab runs: "
          f"{len(df)} statistics, largest |z| = {worst:.2f} (accepted: < {a.z:g})")
    return 0 if worst < a.z else 1


if __name__ == "__main__":
    sys.exit(main())
