"""Units users write in the config: durations (``500ms``, ``30s``, ``5m``), ratios (``1%``,
``0.01``) and byte sizes (``1MiB``).

Every parser raises ``ValueError`` with a message that shows an example of the expected form, so
the config loader can put it after the field path unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from watchdogd.config.base import Parsed

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}


def parse_duration(value: Any) -> float:
    """Seconds from ``"1h30m"``, ``"500ms"`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError('expected a duration like "2s"')
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError('expected a duration like "2s", not a negative number')
        return float(value)
    if not isinstance(value, str):
        raise ValueError('expected a duration like "2s"')
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f'expected a duration like "2s", "500ms" or "5m", got {value!r}')
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def parse_ratio(value: Any) -> float:
    """A fraction in [0, 1] from ``"1%"``, ``"0.5 %"`` or ``0.01``."""
    if isinstance(value, bool):
        raise ValueError('expected a ratio like "1%" or 0.01')
    if isinstance(value, str):
        text = value.strip()
        try:
            ratio = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f'expected a ratio like "1%" or 0.01, got {value!r}') from None
    elif isinstance(value, int | float):
        ratio = float(value)
    else:
        raise ValueError('expected a ratio like "1%" or 0.01')
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"expected a ratio between 0% and 100%, got {value!r}")
    return ratio


def parse_size(value: Any) -> int:
    """Bytes from ``"1MiB"``, ``"512KB"`` or a bare integer."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'expected a size like "1MiB", got {value!r}')
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest config spelling of a duration, for summaries and the docs."""
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[float, Parsed(parse_duration, dump=format_duration)]
Ratio = Annotated[float, Parsed(parse_ratio)]
ByteSize = Annotated[int, Parsed(parse_size)]


class UnitError:
    """A threshold its class's ``_before`` could not read in its metric's unit: the field's own
    validator (``Threshold``) raises the message, so that the error names the field."""

    def __init__(self, message: str) -> None:
        self.message = message


def in_unit(parse: Callable[[Any], float], value: Any) -> float | UnitError:
    """``value`` read by ``parse``, or the reason it cannot be."""
    try:
        return parse(value)
    except ValueError as err:
        return UnitError(str(err))


def _unit_error_raised(value: Any) -> Any:
    if isinstance(value, UnitError):
        raise ValueError(value.message)
    return value


#: A gate's ``above``/``below``: the unit depends on the gate's metric, so the gate's
#: ``_before`` converts it (``in_unit``) and this field reports what did not convert.
Threshold = Annotated[float | None, Parsed(_unit_error_raised)]
