"""watchdogd: metric-driven automatic rollback for Docker hosts."""

__version__ = "0.1.0"
