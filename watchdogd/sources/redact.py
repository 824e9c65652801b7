"""Moved to :mod:`watchdogd.redact`, the one redaction of secrets; kept until every import
points there (issue #13's layout move)."""

from watchdogd.redact import MIN_SECRET_LENGTH, REDACTED, describe_error, redact

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "describe_error", "redact"]
