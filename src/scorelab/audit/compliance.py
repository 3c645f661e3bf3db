"""Check a policy, and a run's outcomes, against data-protection and AI law principles.

The principles' texts are data (audit/data/principles.toml: framework, article, title, text); each names a
check (audit/checks.py), a plain function of what is known: the policy (always), the scenario (its behaviours and
sensors: from a scenario file or a run), and the run's audit tables (only from a run). A check returns
findings — (verdict, cause, evidence) — and the principle's verdict is the worst of them: pass < warn < fail.
Every finding names the rule or setting that caused it, so a reader sees why, not just a verdict; what a
check could not judge without a run is said in `needs_run`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config.loader import _read_toml, load_policy, load_scenario, resolve_source
from .principles import Context, _Row, _ok, Finding, Principle, principles, check, _fmt, _declared, Simulated, _simulated, _contradiction, _speech_rules, _rule, ORDER, SIGNIFICANT_DAYS, CHECKS  # noqa: F401  (re-exported)
from .checks import fair_legitimate, purpose, _undeserved_restrictions, proportionality, _single_event_sanctions, retention, accuracy, confidentiality, security, transparency, transfers, accountability, lawful_fair_transparent, minimisation, integrity_confidentiality, special_categories, automated_decisions, _restricted_evidence, _unrelated, unrelated_contexts, disproportionate  # noqa: F401  (registers every check; re-exported)


def evaluate(ctx: Context) -> pd.DataFrame:
    """One row per principle: verdict, causes, evidence, the text judged against, what needs a run."""
    rows = []
    for p in principles():
        findings, need = CHECKS[p.check](ctx)
        verdict = max((x.verdict for x in findings), key=ORDER.get, default="pass")
        if not findings:
            cause = "nothing in the policy" + (" or the run" if ctx.tables is not None else "") + " conflicts with it"
        else:
            cause = "\n".join(f"[{x.verdict}] {x.cause}" for x in sorted(findings, key=lambda x: -ORDER[x.verdict]))
        evidence = "; ".join(dict.fromkeys(x.evidence for x in findings if x.evidence))
        short = {"UN": "UN", "GDPR": "GDPR", "AIA": "AI Act"}[p.id.split("-")[0]]
        rows.append({"id": p.id, "framework": p.framework, "source": f"{short} {p.article}", "article": p.article,
                     "principle": p.title,
                     "verdict": verdict, "cause": cause, "evidence": evidence,
                     "needs_run": need if ctx.tables is None else "", "text": p.text,
                     "quoted": p.quoted})
    return pd.DataFrame(rows)


def context_for(target: str | Path, tables: dict[str, pd.DataFrame] | None = None, **audit_options) -> Context:
    """A Context from a run directory, a scenario (preset name or file) or a standalone policy TOML."""
    path = Path(target)
    if path.is_dir():
        from .metrics import audit_run, open_run

        run = open_run(path)
        if tables is None:
            tables = audit_run(run, **audit_options)
        return Context(run.scenario.policy, run.scenario, tables, str(path))
    src = resolve_source(str(target))
    data = _read_toml(src)
    if "scenario" in data or "groups" in data:
        sc = load_scenario(str(target))
        return Context(sc.policy, sc, None, str(target))
    return Context(load_policy(src), None, None, str(target))


def compliance(target: str | Path, **audit_options) -> pd.DataFrame:
    return evaluate(context_for(target, **audit_options))
