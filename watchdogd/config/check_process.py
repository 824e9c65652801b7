"""The child of ``config.out_of_process``: ``python -m watchdogd.config.check_process FILE``
loads FILE as ``check-config`` does and writes to its standard output, pickled, one of
``("config", Config)``, ``("error", (file, [(line, path, message), ...]))`` or
``("crash", exception type)``.

It imports only what validation needs (PyYAML, pydantic, the config classes), not the daemon's
modules, so that it is done about when the daemon has imported its own.
"""

from __future__ import annotations

import pickle
import sys
from typing import Any

from watchdogd.config import loader
from watchdogd.errors import ConfigError


def _check(path: str) -> tuple[str, Any]:
    try:
        return "config", loader.load_config(path)
    except ConfigError as err:
        return "error", (err.file, [(p.line, p.path, p.message) for p in err.problems])
    except Exception as err:
        # The type only: a message could quote the config, secrets included.
        return "crash", type(err).__name__


if __name__ == "__main__":
    sys.stdout.buffer.write(pickle.dumps(_check(sys.argv[1])))
