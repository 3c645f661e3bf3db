"""The compliance checks, one function per principle's test, each registered with `@check`: what the
policy, the scenario and the run's audit tables show (docs/audit.md lists what fails and warns)."""

from __future__ import annotations

import math

from ..plugins.lending import reads as lending_reads

from .principles import Context, _Row, _ok, Finding, check, _fmt, _declared, _simulated, _contradiction, _speech_rules, _rule, SIGNIFICANT_DAYS


@check
def fair_legitimate(ctx: Context):
    f: list[Finding] = []
    if ctx.gov.legal_basis is None:
        f.append(Finding("warn", "policy.governance.legal_basis is not declared: no legitimate ground is identified"))
    for b in _speech_rules(ctx):
        r = _rule(ctx, b)
        f.append(Finding("fail", f"rule {b!r} deducts {-r.points} points for political expression: penalising lawful "
                                 "speech is not fair processing"))
    ev = ""
    if ctx.tables is not None and _speech_rules(ctx):
        ch = ctx.row("chilling")
        ev = (f"speech fell by {_fmt(ch['speech_fall'])} events ({ch['speech_fall_share']:.2%}) against the "
              "counterfactual without the policy")
    if ev:
        for x in f:
            if x.verdict == "fail":
                x.evidence = ev
    need = "" if ctx.scenario is not None else "a scenario or run tells which behaviours are speech"
    return f, need


@check
def purpose(ctx: Context):
    f: list[Finding] = []
    p = ctx.gov.purpose
    if p is None:
        f.append(Finding("warn", "policy.governance.purpose is not declared: no specified purpose to limit processing to"))
    for r in ctx.gov.recipients:
        if not r.purpose:
            f.append(Finding("warn", f"recipient {r.name!r} ({r.kind}) receives records with no declared purpose"))
        elif p is not None and r.purpose.strip().lower() != p.strip().lower():
            f.append(Finding("fail", f"recipient {r.name!r} ({r.kind}) uses the records for {r.purpose!r}, a purpose other "
                                     f"than the one they were collected for ({p!r})"))
    for name, ctxs in _unrelated(ctx).items():
        f.append(Finding("fail", f"restriction {name!r} (context {ctx.ctx_of(name)!r}) re-uses data collected in "
                                 f"unrelated contexts: {', '.join(sorted(ctxs))}"))
    return f, ""


def _undeserved_restrictions(ctx: Context) -> list[Finding]:
    """Run outcomes that no behaviour justified: restricted without true misconduct, or by false attributions alone."""
    f: list[Finding] = []
    s, w = ctx.row("sanctions"), ctx.row("wrongful")
    if s["innocent_among_restricted"] > 0:
        f.append(Finding("fail", "citizens without any true misconduct were restricted",
                         f"{s['innocent_among_restricted']:.2%} of the restricted had no true misconduct"))
    if w["wrongly_restricted"] > 0:
        f.append(Finding("fail", "false attributions alone caused restrictions",
                         f"{int(w['wrongly_restricted'])} kept citizens, {int(w['wrongful_restriction_days'])} days of restriction"))
    return f


@check
def proportionality(ctx: Context):
    f: list[Finding] = []
    f += _single_event_sanctions(ctx)
    if ctx.tables is not None:
        f += _undeserved_restrictions(ctx)
        p = ctx.privacy()
        if p.get("fused_share", 0) > 0:
            f.append(Finding("warn", f"records from several sources are fused per citizen ({len(ctx.policy.rules)} rules, "
                                     f"{int(p['sensors'])} sensors)",
                             f"{p['fused_share']:.2%} of citizens have records from 2 or more sources"))
    return f, "" if ctx.tables is not None else "a run measures who was restricted without misconduct"


def _single_event_sanctions(ctx: Context) -> list[Finding]:
    out = []
    trig = {}
    for res in ctx.policy.restrictions:
        for bl in ctx.policy.blacklists:
            if bl.name in res.blacklists and bl.duration_days >= SIGNIFICANT_DAYS:
                trig.setdefault(bl.trigger, []).append((res.name, bl.name, bl.duration_days))
    for b, items in trig.items():
        for res, bl, d in items:
            out.append(Finding("warn", f"one observed {b!r} event lists the citizen on {bl!r} for {d} days, "
                                       f"restricting them ({res!r}) whatever else they do"))
    return out


@check
def retention(ctx: Context):
    f: list[Finding] = []
    days = ctx.gov.retention_days
    need = max([bl.duration_days for bl in ctx.policy.blacklists], default=0)
    sim = _simulated(ctx)
    penalised = any(r.points < 0 for r in ctx.policy.rules)
    if days is not None and penalised and not sim.expiry_days:
        f.append(_contradiction("retention_days", f"{days} days", "never expires a negative record "
                                "(policy.due_process.expiry_days is not set), so penalties count for ever"))
    elif days is None and sim.expiry_days:
        f.append(Finding("warn", f"negative records expire after {sim.expiry_days} days in the simulation "
                                 "(policy.due_process.expiry_days), but no retention period is declared for the records themselves"))
    elif days is None:
        f.append(Finding("fail", "policy.governance.retention_days is not declared and no record expires: records are kept "
                                 "without limit"))
    elif sim.expiry_days and days < sim.expiry_days:
        f.append(_contradiction("retention_days", f"{days} days", f"keeps negative records for {sim.expiry_days} days"))
    elif need and days > 2 * need:
        f.append(Finding("warn", f"policy.governance.retention_days = {days}: more than twice the longest listing "
                                 f"({need} days) that any rule needs"))
    if ctx.tables is not None:
        p = ctx.privacy()
        for x in f:
            if _ok(p["records_held"]):
                x.evidence = f"{int(p['records_held']):,} ledger records held, {p['records_per_citizen_mean']:.2f} per citizen"
    return f, ""


@check
def accuracy(ctx: Context):
    f: list[Finding] = []
    sim = _simulated(ctx)
    if ctx.scenario is not None:
        for s in ctx.scenario.sensors:
            if s.false_attribution is not None:
                rates = ctx.scenario.per_group(s.false_attribution.rate)
                if max(rates) > 0:
                    verdict = "warn" if sim.review > 0 and sim.appeal > 0 else "fail"
                    f.append(Finding(verdict, f"sensor {s.name!r} attributes {s.false_attribution.behaviour!r} to the wrong "
                                              f"person (daily rate up to {max(rates):g})" +
                                     (f"; human review catches {sim.review:.0%} before they score" if sim.review
                                      else "; matches are scored without review (policy.due_process.review = 0)") +
                                     (f"; {sim.appeal:.0%} of those that score are reversed on appeal" if sim.appeal
                                      else "; no appeal corrects them (policy.due_process.appeal = 0)")))
        if ctx.gov.verification is True and not sim.review and any(
                x.false_attribution is not None for x in ctx.scenario.sensors):
            f.append(_contradiction("verification", "true", "scores automated matches with no review (policy.due_process.review = 0)"))
            cov = ctx.scenario.per_group(s.coverage)
            if max(cov) > 0 and min(cov) < max(cov) and any(r.sensor == s.name for r in ctx.policy.rules):
                f.append(Finding("warn", f"sensor {s.name!r} observes groups unequally (coverage {min(cov):g} to {max(cov):g}): "
                                         "the same conduct is recorded differently by group"))
    if ctx.tables is not None:
        w = ctx.row("wrongful")
        ev = f"{int(w['false_attributions_all_citizens']):,} false attributions scored"
        if _ok(w["grade_changed"]):
            ev += f"; {int(w['grade_changed'])} kept citizens' grades changed by them"
        for x in f:
            x.evidence = ev
    return f, "" if ctx.scenario is not None else "the scenario's sensors (false attributions, coverage) are needed"


@check
def confidentiality(ctx: Context):
    f: list[Finding] = []
    for r in ctx.gov.recipients:
        if r.kind == "public" and r.fields:
            f.append(Finding("fail", f"recipient {r.name!r} publishes {', '.join(r.fields)}"))
        elif r.fields and r.safeguards is not True:
            f.append(Finding("warn", f"recipient {r.name!r} ({r.kind}) receives {', '.join(r.fields)} without declared safeguards"))
    if ctx.tables is not None and ctx.gov.recipients:
        p = ctx.privacy()
        u = p.get("unique_share[all_recipients]", 0.0)
        if u > 0:
            f.append(Finding("fail", "what is shared singles citizens out (k-anonymity k = 1)",
                             f"{u:.2%} of citizens are unique on the shared fields"))
    return f, "" if ctx.tables is not None else "a run measures how many citizens the shared fields single out"


@check
def security(ctx: Context):
    f: list[Finding] = []
    have = set(ctx.gov.security)
    missing = [m for m in ("encryption", "access_control", "audit_log") if m not in have]
    if missing:
        f.append(Finding("warn", f"policy.governance.security does not declare {', '.join(missing)}"
                                 + (f" (declared: {', '.join(sorted(have))})" if have else "")))
    return f, ""


@check
def transparency(ctx: Context):
    f: list[Finding] = []
    _declared(ctx, "notice", f, "citizens are not told what is recorded about them", bad="fail",
              good="citizens are told what is recorded about them")
    _declared(ctx, "published_rules", f, "the rules and points are not published", bad="fail",
              good="the rules and points are published")
    _declared(ctx, "access", f, "citizens cannot see their own record (no access, verification or rectification)",
              bad="fail", good="citizens can see and correct their own record")
    return f, ""


def _lender_reads(ctx: Context) -> dict[str, tuple[str, ...]]:
    """recipient -> the record fields the simulated lender standing for it really reads."""
    lender = ctx.policy.lender
    return {lender.recipient: lending_reads(lender)} if lender is not None and lender.recipient else {}


@check
def transfers(ctx: Context):
    """Declared recipients, and the flows the simulation performs: a flow the declaration omits contradicts
    it; a declared recipient nothing in the simulation reads is said so (its effect is not measured)."""
    f: list[Finding] = []
    flows = _lender_reads(ctx)
    for r in ctx.gov.recipients:
        read = flows.get(r.name)
        ev = (f"simulated: lender {ctx.policy.lender.name!r} decides loans from {', '.join(read)}" if read
              else "declared only: nothing in the simulation reads these records")
        if read:
            missing = [x for x in read if x not in r.fields]
            if missing:
                f.append(_contradiction(f"recipients[{r.name}].fields", ", ".join(r.fields) or "no fields",
                                        f"sends {', '.join(missing)} to {r.name!r} (lender "
                                        f"{ctx.policy.lender.name!r} decides loans from them)"))
        if r.safeguards is not True:
            f.append(Finding("fail" if r.kind in ("company", "foreign", "public") else "warn",
                             f"records go to {r.name!r} ({r.kind}) "
                             + ("without safeguards" if r.safeguards is False else "with no safeguards declared"), ev))
        elif not read:
            f.append(Finding("warn", f"recipient {r.name!r} is declared but nothing in the simulation reads its "
                                     "records: its effect on citizens is not measured"))
    return f, ""


@check
def accountability(ctx: Context):
    f: list[Finding] = []
    if ctx.gov.controller is None:
        f.append(Finding("fail", "policy.governance.controller is not declared: nobody answers for the processing"))
    _declared(ctx, "impact_assessment", f, "no data-protection impact assessment was made",
              good="a data-protection impact assessment was made")
    _declared(ctx, "audit_log", f, "no log of accesses and score changes for oversight",
              good="accesses and score changes are logged for oversight")
    return f, ""


@check
def lawful_fair_transparent(ctx: Context):
    a, need = fair_legitimate(ctx)
    b, _ = transparency(ctx)
    return a + b, need


@check
def minimisation(ctx: Context):
    f: list[Finding] = []
    for r in ctx.policy.rules:
        if r.sensitive and r.points != 0:
            f.append(Finding("fail", f"rule {r.behaviour!r} (sensor {r.sensor!r}) processes special-category data "
                                     f"({', '.join(s.value for s in r.sensitive)}) to score citizens"))
    shared = sorted({x for r in ctx.gov.recipients for x in r.fields})
    if "score" in shared:
        f.append(Finding("warn", "the exact score is shared with recipients (a grade or a yes/no would be less data)"))
    if ctx.tables is not None:
        p = ctx.privacy()
        if p.get("fused_share", 0) > 0:
            f.append(Finding("warn", f"{int(p['sensors'])} sources are fused into one record per citizen",
                             f"{p['fused_share']:.2%} of citizens have records from 2 or more sources"))
    return f, ""


@check
def integrity_confidentiality(ctx: Context):
    a, need = security(ctx)
    b, need2 = confidentiality(ctx)
    return a + b, need or need2


@check
def special_categories(ctx: Context):
    f: list[Finding] = []
    basis = ctx.gov.special_category_basis
    for r in ctx.policy.rules:
        if r.sensitive:
            cats = ", ".join(s.value for s in r.sensitive)
            f.append(Finding("warn" if basis else "fail",
                             f"rule {r.behaviour!r} (sensor {r.sensor!r}) is tagged sensitive = [{cats}]"
                             + (f"; exception claimed: {basis!r}" if basis else "; no Art. 9(2) exception declared")))
    if ctx.scenario is not None:
        speech = {b.name for b in ctx.scenario.behaviours if b.speech}
        for r in ctx.policy.rules:
            if r.behaviour in speech and not any(s.value == "political_opinion" for s in r.sensitive):
                f.append(Finding("fail", f"rule {r.behaviour!r} scores speech (behaviour marked speech = true), which "
                                         "reveals political opinions, but is not tagged political_opinion"))
    return f, "" if ctx.scenario is not None else "a scenario tells which behaviours are speech"


@check
def automated_decisions(ctx: Context):
    f: list[Finding] = []
    if not ctx.policy.restrictions:
        return f, ""
    names = ", ".join(r.name for r in ctx.policy.restrictions)
    hr, ap = ctx.gov.human_review, ctx.gov.appeal
    sim = _simulated(ctx)  # read from what the simulation does (policy.due_process), not from the declaration
    if not sim.review:
        f.append(Finding("fail", f"restrictions ({names}) follow automatically from grades or lists: the simulated "
                                 "policy reviews no decision (policy.due_process.review = 0)"))
        if hr is True:
            f.append(_contradiction("human_review", "true", "reviews no decision"))
    elif hr is False:
        f.append(_contradiction("human_review", "false", f"reviews automated evidence ({sim.review:.0%} of false matches caught)"))
    if not sim.appeal:
        f.append(Finding("fail", "citizens cannot contest the decision: the simulated policy reverses nothing on appeal "
                                 "(policy.due_process.appeal = 0)"))
        if ap is True:
            f.append(_contradiction("appeal", "true", "reverses nothing on appeal"))
    elif ap is False:
        f.append(_contradiction("appeal", "false", f"reverses {sim.appeal:.0%} of contested false records on appeal"))
    if ctx.tables is not None:
        s = ctx.row("sanctions")
        for x in f:
            x.evidence = _restricted_evidence(s)
    return f, ""


def _restricted_evidence(s: _Row) -> str:
    if _ok(s["ever_restricted_share"]):
        return (f"{s['ever_restricted_share']:.2%} of kept citizens restricted at least once, "
                f"{s['restricted_days_mean']:.1f} days each on average")
    if _ok(s["restricted_mean_share"]):
        return f"{s['restricted_mean_share']:.2%} of citizens restricted on an average day"
    return ""


def _unrelated(ctx: Context) -> dict[str, set[str]]:
    """restriction -> contexts of the data that can trigger it, other than the restriction's own."""
    out: dict[str, set[str]] = {}
    scored = [r for r in ctx.policy.rules if r.points != 0]
    for res in ctx.policy.restrictions:
        sources = set()
        if res.grades:
            sources |= {ctx.ctx_of(r.behaviour) for r in scored}
            if ctx.scenario is not None and ctx.scenario.peer is not None:
                sources.add(ctx.ctx_of("peer_rating"))  # the score is everyone's ratings of everyday encounters
            if ctx.policy.composite is not None:
                sources |= {ctx.ctx_of(sub.name) for sub in ctx.policy.composite.subscores}
        for bl in ctx.policy.blacklists:
            if bl.name in res.blacklists:
                sources.add(ctx.ctx_of(bl.trigger))
        other = {s for s in sources if s != ctx.ctx_of(res.name)}
        if other:
            out[res.name] = other
    return out


@check
def unrelated_contexts(ctx: Context):
    f: list[Finding] = []
    declared = bool(ctx.gov.contexts)
    for name, other in _unrelated(ctx).items():
        res = next(r for r in ctx.policy.restrictions if r.name == name)
        how = []
        if res.grades:
            via = "peer ratings of everyday encounters" if ctx.scenario is not None and ctx.scenario.peer is not None \
                else "the composite's sub-scores" if ctx.policy.composite is not None else "points of every scored rule"
            how.append(f"grades {', '.join(res.grades)} (reached through {via})")
        if res.blacklists:
            how.append(f"blacklists {', '.join(res.blacklists)}")
        f.append(Finding("fail", f"restriction {name!r} (context {ctx.ctx_of(name)!r}) is triggered by "
                                 f"{' and '.join(how)}, i.e. by data from {', '.join(sorted(other))}"
                                 + ("" if declared else " (contexts not declared in policy.governance.contexts: "
                                                        "each behaviour is taken as its own context)")))
    if ctx.tables is not None and f:
        s = ctx.row("sanctions")
        for x in f:
            x.evidence = _restricted_evidence(s)
    return f, ""


@check
def disproportionate(ctx: Context):
    f: list[Finding] = []
    for b in _speech_rules(ctx):
        f.append(Finding("fail", f"rule {b!r} penalises political expression ({_rule(ctx, b).points} points), "
                                 "behaviour that justifies no detriment"))
    f += _single_event_sanctions(ctx)
    # a score-gated restriction is scoring, whatever feeds the score: peer ratings and composite scores included
    source = ("peer ratings of everyday encounters" if ctx.scenario is not None and ctx.scenario.peer is not None
              else "a composite of sub-scores" if ctx.policy.composite is not None else None)
    if source:
        for res in ctx.policy.restrictions:
            if res.grades:
                f.append(Finding("fail", f"restriction {res.name!r} ({res.description or 'a detriment'}) follows from grades "
                                         f"{', '.join(res.grades)} of a score built from {source}: a detriment in one "
                                         "context for behaviour scored in others"))
    for r in ctx.policy.rules:
        if r.points < 0 and ctx.policy.grades:
            bands = sorted(ctx.policy.grades, key=lambda g: (g.min is not None, g.min or 0))
            restricted = {g for res in ctx.policy.restrictions for g in res.grades}
            start = ctx.policy.start_score
            after = start + r.points
            grade = next((g for g in bands[::-1] if g.min is None or after >= g.min), None)
            if grade is not None and grade.name in restricted:
                f.append(Finding("fail", f"one {r.behaviour!r} event ({r.points} points) takes a citizen from the start "
                                         f"score {start} to grade {grade.name}, which is restricted"))
    if ctx.tables is not None:
        f += _undeserved_restrictions(ctx)
        di = ctx.tables["sanctions"]
        flagged = di[di["disparate_impact_flag"]]
        for g, row in flagged.iterrows():
            lo, hi = row.get("disparate_impact_ci_low", math.nan), row.get("disparate_impact_ci_high", math.nan)
            times = (f"{row['disparate_impact']:.2f} times as often as {row['reference_group']!r}"
                     if math.isfinite(row["disparate_impact"]) else f"while {row['reference_group']!r} never is")
            f.append(Finding("warn", f"group {g!r} is restricted {times} (outside 0.8-1.25)",
                             f"95% CI {lo:.2f}-{hi:.2f}" if _ok(lo, hi) else ""))
    return f, "" if ctx.tables is not None else "a run measures who was restricted without misconduct, and disparities"
