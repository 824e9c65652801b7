"""The config users write: YAML validated into typed objects, errors with file, line and field.

The classes (``schema``) import no validation library; ``loader`` validates (with pydantic),
and the daemon has that done in a short-lived process (``out_of_process``).
"""

from watchdogd.config.schema import Config, TargetConfig
from watchdogd.config.summary import summarize

__all__ = ["Config", "TargetConfig", "summarize"]
