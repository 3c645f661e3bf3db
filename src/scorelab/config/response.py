"""How simulated people respond to being scored: specific deterrence, general deterrence (chilling),
learning from refusals, gaming below a score, score curves and conformity through the graph. Data only;
the kernel (engine/stages.py) and the plugins turn it into propensity multipliers. Names are cross-checked
in models.Scenario."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from ..plugins.conformity import Conformity
from .limits import SCORE_LIMIT
from .strict import Lax, StrictModel, new_list

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
CurveScore = Annotated[float, Field(ge=-SCORE_LIMIT, le=SCORE_LIMIT)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$")]
Strict = StrictModel


class Deterrence(Strict):
    """Each observed penalty for behaviour b multiplies that citizen's propensity for b by `factor` (specific
    deterrence); with `points_unit`, a penalty of p points counts ceil(|p| / points_unit) times, so a harsher
    sanction deters more."""

    factor: Probability = 1.0
    behaviours: list[Name] | None = Field(None, description="default: every behaviour with negative points")
    points_unit: int | None = Field(None, ge=1, le=1_000_000,
                                    description="points of penalty that count as one deterrence step (absent: one step per penalty)")


class Chilling(Strict):
    """General deterrence (self-censorship): knowing one is watched and what a penalty costs lowers a behaviour
    for everyone, penalised or not. Multiplier per group: 1 / (1 + elasticity x detection x severity / points_unit),
    with severity = |points| of the behaviour's rule + listing_points for each blacklist it triggers."""

    behaviour: Name
    elasticity: float = Field(gt=0.0, le=1000.0, allow_inf_nan=False)
    points_unit: int = Field(100, ge=1, le=1_000_000)
    listing_points: int = Field(0, ge=0, le=1_000_000, description="perceived cost of a listing, in points")


class Learning(Strict):
    """A refused attempt (a restriction's `blocks`) teaches: the citizen's propensity for the behaviour is
    multiplied by `factor` for `days` days after each refusal."""

    behaviour: Name
    days: int = Field(ge=1, le=20000)
    factor: Probability


class Gaming(Strict):
    """While a citizen's score is below `below_score`, their propensity for `behaviour` is multiplied."""

    behaviour: Name
    below_score: int = Field(ge=-SCORE_LIMIT, le=SCORE_LIMIT)
    factor: float = Field(gt=0.0, le=1000.0)


class ScoreCurve(Strict):
    """Propensity for `behaviour` follows the score through a piecewise-linear table of (score, factor)."""

    behaviour: Name
    points: list[Annotated[tuple[CurveScore, Annotated[float, Field(ge=0.0, le=1000.0)]], Lax]] = Field(min_length=2)

    @field_validator("points")
    @classmethod
    def _increasing(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        xs = [p[0] for p in v]
        if any(b <= a for a, b in zip(xs, xs[1:])):
            raise ValueError("scores in `points` must be strictly increasing")
        return v


class Response(Strict):
    deterrence: Deterrence = Field(default_factory=Deterrence)  # (a factory: no validator built at import)
    gaming: list[Gaming] = Field(default_factory=new_list)
    score_curves: list[ScoreCurve] = Field(default_factory=new_list)
    chilling: list[Chilling] = Field(default_factory=new_list, description="general deterrence by monitoring x sanction")
    learning: list[Learning] = Field(default_factory=new_list, description="refused attempts lower later attempts")
    conformity: list[Conformity] = Field(default_factory=new_list, max_length=120,
                                         description="contacts' behaviour and sanctions shift one's own (plugins/conformity.py)")
