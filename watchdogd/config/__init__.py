"""The config users write: YAML validated into typed objects, errors with file, line and field."""

from watchdogd.config.loader import load_config, load_config_text
from watchdogd.config.schema import Config, TargetConfig
from watchdogd.config.summary import summarize

__all__ = ["Config", "TargetConfig", "load_config", "load_config_text", "summarize"]
