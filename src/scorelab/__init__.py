"""scorelab: simulate social scoring systems as policy-as-code over synthetic societies, and measure
what they do to people."""

__version__ = "0.1.0"

from .api import Run, load, simulate  # noqa: E402
from .config.loader import ConfigError, list_presets  # noqa: E402

__all__ = ["Run", "load", "simulate", "ConfigError", "list_presets", "__version__"]
