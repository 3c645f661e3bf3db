"""One glossary for every report: each label a page shows, and what it means in plain words.

`TERMS` holds the labels of the run report (table headings, cards, key figures); `metric_label(name)`
gives the short label and meaning of every summary metric that comparisons and sweeps show (the meanings
are `experiments.summary.DESCRIPTIONS`). A test checks that every label on every page has an entry.
"""

from __future__ import annotations

import html
import re

from .experiments.summary import DESCRIPTIONS

TERMS: dict[str, str] = {
    # who and how many
    "group": "a part of the synthetic population with its own behaviour rates and sensor errors; 'all' is everyone",
    "citizens": "synthetic people simulated (never real people)",
    "days": "days simulated",
    "metric": "the name of a measured quantity",
    "value": "the measured value",
    "what it means": "the measured quantity in words",
    # sanctions
    "restricted at the end": "share of citizens under any restriction (a ban, a denied service) on the last day",
    "restricted, mean over days": "share of citizens restricted on an average day (the share of citizen-days restricted)",
    "ever restricted": "share of citizens restricted on at least one day of the run",
    "disparate impact": ("a group's ever-restricted share divided by that of the least restricted group; 1 is equal "
                         "treatment, and outside 0.8–1.25 it is flagged (the four-fifths rule)"),
    "restricted days per citizen": "days spent under a restriction, averaged over the group's citizens",
    "restricted without misconduct (FPR)": ("false-positive rate: of the citizens who did nothing the scenario declares "
                                            "misconduct, the share restricted at least once"),
    "misconduct never restricted (FNR)": ("false-negative rate: of the citizens with true misconduct, the share never "
                                          "restricted"),
    "innocent among the restricted": "of the citizens restricted at least once, the share with no true misconduct",
    "of the restricted had no true misconduct": "of the citizens restricted at least once, the share with no true misconduct",
    "restricted without misconduct": ("of every 1,000 citizens who did nothing the scenario declares misconduct, how "
                                      "many were restricted at least once"),
    "misconduct": ("a behaviour the scenario declares wrongdoing (behaviours[].misconduct); points play no part in "
                   "what counts as misconduct"),
    # errors
    "false attribution": "an event a sensor recorded against a citizen who did not do it (a camera naming the wrong person)",
    "falsely penalised": "false attributions scored as penalties, per 1,000 citizens of the group (every citizen)",
    "false attributions (all citizens)": "penalties scored for events a sensor invented, counted over every citizen",
    "citizens falsely attributed (kept)": "citizens kept in detail with at least one false attribution",
    "points lost to them": "points those citizens lost to false attributions",
    "final score changed": "citizens whose final score would differ without their false attributions",
    "grade changed": "citizens whose grade history would differ without their false attributions",
    "listing changed": "citizens whose blacklist history would differ without their false attributions",
    "wrongly restricted": "citizens restricted on more days than they would have been without their false attributions",
    "wrongly restricted (kept citizens)": ("citizens kept in detail who were restricted on more days than they would have "
                                           "been without their false attributions"),
    "days of wrongful restriction": "the extra days of restriction false attributions caused, in total",
    "days per victim": "extra days of restriction per wrongly restricted citizen",
    # speech
    "speech": "political expression: behaviours the scenario marks speech = true",
    "speech with policy": "true speech events in the run",
    "without policy": "true speech events of the same people, same random numbers, with no policy (the counterfactual)",
    "without": "per 1,000 citizen-days, without the policy (the counterfactual)",
    "fall": "speech events lost to the policy: without minus with",
    "fall (share)": "the share of speech lost to the policy: fall divided by speech without the policy",
    "per 1,000 citizen-days with": "true speech events per 1,000 citizen-days with the policy",
    "speech lost to the policy": "the share of political speech the policy suppressed (the chilling effect)",
    "speech lost": "the share of the group's political speech the policy suppressed (the chilling effect)",
    "chilling effect": "speech that citizens stop because they are penalised or fear penalties",
    "counterfactual": "the same society with the same random numbers but no policy: no points, lists or restrictions",
    # gaming
    "bought behaviours": "behaviours that earn points for money (donations, purchases)",
    "points bought": "points awarded for bought behaviours",
    "points earned by conduct": "points awarded for conduct that was not bought",
    "bought share": "the share of all points awarded that were bought",
    "events induced by gaming": "bought events beyond what the same citizens would do without the policy",
    "money collected": "money paid for bought points",
    # scores
    "mean score": "the average score of the group's citizens",
    "mean score, start → end": "the group's average score when the run began and on the last day",
    "score": "the number of points a citizen holds",
    "Gini of scores": "inequality of final scores from 0 (all equal) to 1 (one citizen holds everything)",
    "p10": "the score below which 10% of the group falls",
    "median": "the score below which half of the group falls",
    "p90": "the score below which 90% of the group falls",
    "bottom grades": "the grades that trigger restrictions (else the lowest two)",
    "in bottom grades at the end": "share of citizens in the bottom grades on the last day",
    "ever in bottom grades": "share of citizens in the bottom grades on at least one day",
    "of those, still there at the end": "of the citizens ever in the bottom grades, the share still there at the end",
    "free citizens living with / in contact with a restricted one": ("of the unrestricted citizens, the share living "
                                                                     "with (or in contact with) a restricted citizen"),
    # scenario table
    "rule (behaviour)": "the behaviour a rule of the policy scores",
    "points": "points a rule adds (+) or deducts (−) per observed event",
    "also": "other effects of the rule: a score cap, money paid, a price",
    "sensor": "the data source that observes a behaviour (camera, informant, app)",
    "sensitive": "special categories of data the rule uses (political opinion, biometrics...)",
    "context": "the social context the data comes from (finance, transport...): the EU AI Act asks whether it matches the sanction's",
    # recipients
    "recipient": "an organisation outside the scoring authority that receives citizens' records",
    "kind": "company, government, public or foreign",
    "purpose": "what the recipient says it uses the records for",
    "fields": "the columns of the citizen record shared with the recipient",
    "safeguards": "the protection the recipient is declared to give the data",
    # compliance
    "principles failed": "principles of data protection and AI law the policy or its outcomes fail",
    "source": "the law or principle a row judges against (UN, GDPR, EU AI Act)",
    "principle": "what the text requires, in short",
    "verdict": "pass, warn or fail: the worst finding for the principle",
    "why": "the rule or setting that caused the verdict, with the run's evidence",
    "text judged against": "the text of the law or principle, quoted or paraphrased",
    # comparisons and sweeps
    "difference": "arm minus baseline, averaged over replicates (paired on the same seeds)",
    "interval": "the confidence interval of the difference (Student t over replicates)",
    "95% CI": "95% confidence interval: the range the true value lies in with 95% confidence, given the runs",
    "replicates": "runs with different seeds; replicate r uses the same seed in every arm or sweep point",
    "runs": "finished runs at this value (replicates, and the other parameters' values)",
    "baseline": "the first arm, which the others are compared with",
    "arm": "one policy or scenario of a comparison",
    "rules": "the number of rules in the policy",
    "policy": "the policy an arm applies",
    "meaning": "the metric in words",
}


METRIC_LABELS: dict[str, str] = {
    "final_mean_score": "mean score at the end",
    "final_restricted_share": "restricted at the end",
    "mean_restricted_share": "restricted, mean over days",
    "penalties": "penalties",
    "wrongful_penalties": "false penalties",
    "criticism": "political speech",
    "wrongful_rewards": "false rewards",
    "penalties_per_1000": "penalties per 1,000",
    "wrongful_penalties_per_100k": "false penalties per 100,000",
    "criticism_per_1000": "speech per 1,000",
    "points_deducted": "points deducted",
    "points_awarded": "points awarded",
    "share_wrongfully_penalised": "falsely penalised at least once",
    "share_restricted_without_misconduct": "restricted at the end without misconduct",
    "mean_score_of_wrongfully_penalised": "mean score of the falsely penalised",
    "restricted_share": "restricted at the end (audit)",
    "restricted_mean_share": "restricted, mean over days (audit)",
    "ever_restricted_share": "ever restricted",
    "disparate_impact": "disparate impact",
    "disparate_impact_flag": "disparate impact flagged",
    "restricted_days_mean": "restricted days per citizen",
    "false_positive_rate": "restricted without misconduct (FPR)",
    "false_negative_rate": "misconduct never restricted (FNR)",
    "innocent_among_restricted": "innocent among the restricted",
    "falsely_attributed_share": "falsely attributed at least once",
    "wrongful_sanctioned": "wrongly restricted",
    "wrongful_sanctioned_share": "wrongly restricted (share)",
    "wrongful_restriction_days": "days of wrongful restriction",
    "grade_changed": "grade changed by errors",
    "listing_changed": "listing changed by errors",
    "speech_run": "speech with policy",
    "speech_counterfactual": "speech without policy",
    "speech_fall": "speech lost",
    "speech_fall_share": "speech lost (share)",
    "points_bought": "points bought",
    "points_earned_by_conduct": "points earned by conduct",
    "bought_share_of_points_awarded": "bought share of points",
    "events_induced_by_gaming": "events induced by gaming",
    "money_collected": "money collected",
    "gini": "Gini of scores",
    "bottom_share_final": "in bottom grades at the end",
    "ever_bottom_share": "ever in bottom grades",
    "stuck_in_bottom_share": "stuck in bottom grades",
    "grade_changes_per_citizen": "grade changes per citizen",
    "contacts_of_restricted_share": "living with a restricted citizen",
    "sources_per_citizen_mean": "data sources per citizen",
    "fused_share": "records fused from several sources",
    "records_per_citizen_mean": "records per citizen",
    "unique_share": "unique on shared fields (k = 1)",
    "below_k5_share": "in a class under 5 on shared fields",
}
# the privacy table's rows (metric[recipient] for the k-anonymity rows)
PRIVACY_LABELS: dict[str, tuple[str, str]] = {
    "sensors": ("data sources read", "data sources the policy reads"),
    "sources_per_citizen_mean": ("data sources per citizen", "distinct sensors with a record on the citizen, on average"),
    "sources_per_citizen_max": ("data sources per citizen, most", "the most distinct sensors with a record on one citizen"),
    "fused_share": ("records fused from several sources", "share of citizens with records from 2 or more sources"),
    "records_per_citizen_mean": ("records per citizen", "records held per citizen, on average"),
    "records_per_citizen_max": ("records per citizen, most", "the most records held on one citizen"),
    "records_held": ("records held", "records held in all"),
    "retention_days": ("retention (days)", "how long records are kept"),
    "recipients": ("recipients", "organisations outside the scoring authority that receive records"),
    "unique_share": ("unique on shared fields (k = 1)", "share of citizens whose shared fields single them out"),
    "below_k5_share": ("in a class under 5 on shared fields", "share of citizens fewer than 5 of whom share their shared fields"),
    "min_k": ("smallest class on shared fields", "the fewest citizens who share one combination of the shared fields"),
}
_RECIPIENT = re.compile(r"^(?P<metric>[^\[]+)\[(?P<who>[^\]]+)\]$")


def privacy_label(key: str) -> tuple[str, str]:
    """(label, meaning) of a privacy-table row such as ``unique_share[partner_bank]``."""
    m = _RECIPIENT.match(key)
    base, who = (m["metric"], m["who"]) if m else (key, None)
    label, meaning = PRIVACY_LABELS.get(base, (base.replace("_", " "), ""))
    if who:
        label += ", all recipients" if who == "all_recipients" else f", {who}"
    return label, meaning


_LISTED = re.compile(r"^final_listed_(?P<name>.+)_share$")


def metric_label(metric: str) -> tuple[str, str]:
    """(short label, meaning) of a summary metric; metrics named after a blacklist are labelled from its name."""
    m = _LISTED.match(metric)
    if m:
        return (f"on {m['name']} at the end", f"share of citizens listed on {m['name']} on the last day")
    meaning = DESCRIPTIONS.get(metric)
    if metric == "disparate_impact_flag":
        meaning = "1 when disparate impact is outside 0.8–1.25 (the four-fifths rule), else 0"
    label = METRIC_LABELS.get(metric)
    if label is None or meaning is None:
        return (metric.replace("_", " "), meaning or "a metric a plugin or provider declared")
    return label, meaning


def glossary_html(terms: dict[str, str], title: str = "Glossary") -> str:
    """A definition list of ``terms`` (label -> meaning), in alphabetical order."""
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
                    for k, v in sorted(terms.items(), key=lambda kv: kv[0].lower()))
    return f"<h2 id='glossary'>{html.escape(title)}</h2><dl class='glossary'>{items}</dl>"


LABEL_RE = re.compile(r"<(?:th|dt)[^>]*>(.*?)</(?:th|dt)>|<span class='kpi'><b>.*?</b>(.*?)</span>", re.S)


def labels_on(page: str) -> set[str]:
    """Every label a page shows in a table heading, a card or a key figure (markup removed, unescaped)."""
    out = set()
    page = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    for a, b in LABEL_RE.findall(page):
        text = html.unescape(re.sub(r"<[^>]+>", "", a or b)).strip()
        if text:
            out.add(text)
    return out
