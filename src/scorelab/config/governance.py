"""What a policy declares about its data: purpose, legal basis, retention, recipients, safeguards.

The simulation never reads this table; the compliance checks and the audit do. Every field is optional
and `None` means *not declared*: a check that needs the field says so (warn), rather than assume the
best. Names inside (behaviours, restrictions, citizens-table columns) are checked against the policy by
`check_names`, so a typo is reported at load time with the field that holds it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from .strict import StrictModel, new_dict, new_list

Text = Annotated[str, Field(max_length=2000)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$")]

# columns of citizens.parquet that a policy may declare as shared with a recipient
SHAREABLE = ("group", "score", "grade", "restricted", "blacklisted_until", "wrongful_penalties", "true_misconduct")
SHAREABLE_PREFIXES = ("observed_", "listed_until_", "restricted_")


_Strict = StrictModel  # config/strict.py: strict types, finite floats, no unknown keys


class Recipient(_Strict):
    """Someone outside the scoring authority who receives citizens' records."""

    name: Name
    kind: str = Field("company", pattern=r"^(company|government|public|foreign)$",
                      description="company (a partner company), government, public (published), foreign")
    purpose: Text = ""
    fields: list[Name] = Field(default_factory=new_list, description="columns of the citizen record it receives")
    safeguards: bool | None = Field(None, description="a contract or law that gives the data equivalent protection")


class Governance(_Strict):
    """Declarations a data-protection review asks for. `None` = not declared."""

    controller: Text | None = Field(None, description="who is responsible for the processing")
    purpose: Text | None = Field(None, description="the specified purpose of the scoring")
    legal_basis: Text | None = Field(None, description="the law or consent the processing rests on")
    special_category_basis: Text | None = Field(
        None, description="the GDPR Art. 9(2) exception relied on for sensitive categories, if any")
    notice: bool | None = Field(None, description="citizens are told what is recorded about them and why")
    published_rules: bool | None = Field(None, description="the rules and points are published")
    access: bool | None = Field(None, description="citizens can see their own record and score history")
    human_review: bool | None = Field(None, description="a person reviews each restriction before it applies")
    appeal: bool | None = Field(None, description="citizens can contest a recorded event or a sanction")
    verification: bool | None = Field(None, description="sensor matches are verified before they are scored")
    retention_days: int | None = Field(None, ge=0, le=1_000_000,
                                       description="how long records are kept; omitted: no limit declared")
    security: list[Name] = Field(default_factory=new_list, description="measures, e.g. encryption, access_control, audit_log")
    impact_assessment: bool | None = Field(None, description="a data-protection impact assessment was made")
    audit_log: bool | None = Field(None, description="every access and score change is logged for oversight")
    recipients: list[Recipient] = Field(default_factory=new_list)
    contexts: dict[Name, Name] = Field(
        default_factory=new_dict,
        description="social context of each behaviour and restriction (e.g. traffic_violation = 'road', "
                    "travel_ban = 'transport'); default: its own name")
    prices: dict[Name, Annotated[float, Field(ge=0, le=1e12)]] = Field(
        default_factory=new_dict, description="money a citizen pays for one event of a behaviour (a donation): bought points")

    def check_names(self, behaviours: set[str] | None, restrictions: set[str] | None = None) -> None:
        """Raise ValueError naming the field if a name refers to nothing in the policy.

        With ``behaviours=None`` only the declarations that stand alone (recipients) are checked."""
        self._check_recipients()
        if behaviours is None:
            return
        known = behaviours | (restrictions or set())
        for key in self.contexts:
            if key not in known:
                raise ValueError(f"governance.contexts: unknown behaviour or restriction {key!r}; "
                                 f"allowed: {', '.join(sorted(known))}")
        for key in self.prices:
            if key not in behaviours:
                raise ValueError(f"governance.prices: unknown behaviour {key!r}; allowed: {', '.join(sorted(behaviours))}")

    def _check_recipients(self) -> None:
        seen: set[str] = set()
        for i, r in enumerate(self.recipients):
            if r.name in seen:
                raise ValueError(f"governance.recipients: name {r.name!r} appears twice")
            seen.add(r.name)
            for f in r.fields:
                if f not in SHAREABLE and not f.startswith(SHAREABLE_PREFIXES):
                    raise ValueError(f"governance.recipients[{i}].fields: unknown field {f!r}; allowed: "
                                     f"{', '.join(SHAREABLE)}, or observed_<behaviour>, listed_until_<blacklist>")
