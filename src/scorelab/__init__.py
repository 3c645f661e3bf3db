"""scorelab: simulate social scoring systems as policy-as-code over synthetic societies, and measure
what they do to people."""

from ._version import __version__
from .api import Run, load, simulate  # noqa: E402
from .config.loader import ConfigError, list_presets  # noqa: E402
from . import audit  # noqa: E402  (a package that is also callable: scorelab.audit(run) -> DataFrames)
from .notebook import compare, sweep  # noqa: E402

__all__ = ["Run", "load", "simulate", "audit", "compare", "sweep", "ConfigError", "list_presets", "__version__"]
