"""``python -m watchdogd`` runs the command line."""

from watchdogd.cli import main

raise SystemExit(main())
