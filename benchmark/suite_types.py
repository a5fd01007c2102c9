"""The building blocks of suite specs: strict scalar types and the frozen base model.

Shared by the suite schema (``benchmark.suite``) and the model schema
(``benchmark.suite_model``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from benchmark.suite_errors import custom, show

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
DIRECTIONS = ("positive", "negative")


def yaml_float(value: Any) -> Any:
    """PyYAML reads ``1e-3`` (no dot) as a string; take it as the number it means."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def interval(lo: float, hi: float, *, hi_closed: bool = False) -> BeforeValidator:
    what = f"in ({lo:g}, {hi:g}]" if hi_closed else f"strictly between {lo:g} and {hi:g}"

    def check(value: Any) -> Any:
        number = yaml_float(value)
        numeric = isinstance(number, int | float) and not isinstance(number, bool)
        if numeric and not (lo < number <= hi if hi_closed else lo < number < hi):
            raise custom(f"expected a number {what}, got {show(value)}")
        return number

    return BeforeValidator(check)


Number = Annotated[float, BeforeValidator(yaml_float), Field(strict=True, allow_inf_nan=False)]
PosInt = Annotated[int, Field(strict=True, ge=1)]
Str = Annotated[str, Field(strict=True, min_length=1)]
Name = Annotated[str, Field(strict=True, pattern=NAME_PATTERN)]
Params = Annotated[dict[str, Any], BeforeValidator(lambda v: {} if v is None else v)]
Names = Annotated[list[Str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]
Direction = Literal["positive", "negative"]


class Spec(BaseModel):
    """A frozen spec that refuses unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NamedSpec(Spec):
    """A spec that may be written as a bare name instead of a mapping."""

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if not isinstance(value, dict):
            keys = ", ".join(cls.model_fields)
            raise custom(f"expected a name or a mapping with {keys}, got {show(value)}")
        return value
