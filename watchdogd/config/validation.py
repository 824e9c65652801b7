"""The config classes validated by pydantic: plain data in, typed frozen objects out.

The only module of the config that imports pydantic. The daemon never loads it: its config is
validated in a short-lived process (``out_of_process``); ``check-config``, the command line's
client and the tests validate in their own process.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar, cast

from pydantic import TypeAdapter, ValidationError

__all__ = ["ValidationError", "parse"]

T = TypeVar("T")


@functools.cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def parse(kind: type[T], data: Any) -> T:
    """``data`` validated into a ``kind`` (any config class). Raises ``ValidationError``."""
    value: T = _adapter(cast(Any, kind)).validate_python(data)
    return value
