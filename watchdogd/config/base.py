"""The base of every config class and the field types the config modules share.

Config classes are plain frozen dataclasses, so the daemon that reads them never imports a
validation library (issue #16: pydantic and its models cost the idle daemon about 10 MB).
Their rules are written next to their fields all the same: constraints as ``annotated_types``
markers (``Ge``, ``MinLen``), parsing and checks as the markers below. Only
``config.validation`` turns them into pydantic validators, in ``check-config``, the tests and
the short-lived process that validates the daemon's config (``config.out_of_process``).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Annotated, Any, ClassVar

from annotated_types import Ge, Le, MaxLen, MinLen

__all__ = [
    "Checked",
    "Matches",
    "Name",
    "Parsed",
    "StatusList",
    "Strict",
    "Tagged",
    "alias",
    "config_keys",
    "config_types",
]


# The markers below hold no pydantic: each builds its validator when pydantic asks for it
# (``__get_pydantic_core_schema__``), which happens only where the config is validated.


class Parsed:
    """A user's spelling turned into the field's value before its type is checked
    (``"5m"`` into 300.0); ``dump``, if given, spells the value back when pydantic dumps it."""

    def __init__(self, parse: Callable[[Any], Any], dump: Callable[[Any], Any] | None = None):
        self.parse = parse
        self.dump = dump

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema  # noqa: PLC0415 - validation only

        serialization = (
            core_schema.plain_serializer_function_ser_schema(self.dump, return_schema=None)
            if self.dump is not None
            else None
        )
        return core_schema.no_info_before_validator_function(
            self.parse, handler(source), serialization=serialization
        )


class Checked:
    """A rule on a field's value once it has its type; ``check`` raises ``ValueError`` with
    the message the user sees after the field's path."""

    def __init__(self, check: Callable[[Any], Any]):
        self.check = check

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema  # noqa: PLC0415 - validation only

        return core_schema.no_info_after_validator_function(self.check, handler(source))


class Matches:
    """A text that must match ``pattern`` in full."""

    def __init__(self, pattern: str):
        self.pattern = pattern

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic import StringConstraints  # noqa: PLC0415 - validation only

        return handler(Annotated[source, StringConstraints(pattern=self.pattern)])


class Tagged:
    """A union of config classes told apart by the value of the key ``key``."""

    def __init__(self, key: str):
        self.key = key

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic import Discriminator  # noqa: PLC0415 - validation only

        return handler(Annotated[source, Discriminator(self.key)])


class Strict:
    """Base of every config class, each a ``@dataclass(frozen=True, kw_only=True)``: unknown
    keys are errors (a typo gets a "did you mean"), a key may be spelt by its alias (``for``)
    or its field's name (``for_``).

    A subclass may rewrite the raw mapping before its fields are validated (``_before``:
    infer a key, convert a threshold by its metric's unit) and check rules across its fields
    in ``__post_init__`` (raise ``ValueError``)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid", "populate_by_name": True}

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        schema = handler(source)
        before = getattr(cls, "_before", None)
        if before is None:
            return schema
        from pydantic_core import core_schema  # noqa: PLC0415 - validation only

        return core_schema.no_info_before_validator_function(before, schema)


def alias(name: str) -> dict[str, str]:
    """A field's metadata for a key that is a Python keyword (``for``, ``json``)."""
    return {"alias": name}


def config_keys(cls: type[Strict]) -> dict[str, dataclasses.Field[Any]]:
    """The keys a config class accepts in the file (aliases where a field has one), with
    their fields: for "did you mean", reload's key list and the reference docs' tests."""
    return {
        field.metadata.get("alias", field.name): field
        for field in dataclasses.fields(cls)  # type: ignore[arg-type]
        if field.init
    }


def config_types(cls: type[Strict]) -> dict[str, Any]:
    """Each key's type, resolved (the config modules write their annotations as text), with
    its markers: for walking the classes nested in a config."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {key: hints[field.name] for key, field in config_keys(cls).items()}


Name = Annotated[str, MinLen(1), MaxLen(64), Matches(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
StatusList = Annotated[list[Annotated[int, Ge(100), Le(599)]], MinLen(1)]
