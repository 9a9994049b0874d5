"""The mechanism behind Settings: how a setting is declared (`setting(...)`), and how its text
is parsed and checked against its declared type, range or choices. The declarations themselves
live in bot.app.config."""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar, dataclass_transform
from urllib.parse import urlsplit

T = TypeVar("T")


@dataclass(frozen=True)
class Spec:
    """One setting as declared; its type is the annotation of its Settings field."""

    name: str  # the variable read
    default: str  # as written in `.env`; "" means unset
    help: str  # one line: what it means
    low: float | None = None  # numbers: the accepted range, both ends included
    high: float | None = None
    choices: tuple[str, ...] = ()  # text: the accepted values (any case), as spelled here
    secret: bool = False  # kept out of repr() and scrubbed from logs
    example: str = ""  # one more comment line for `.env.example`


def setting(
    name: str,
    default: str,
    help: str,
    /,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] = (),
    secret: bool = False,
    example: str = "",
) -> Any:
    """A Settings field declared by its Spec: required, since load_settings fills every one."""
    spec = Spec(name, default, help, low, high, choices, secret, example)
    return field(repr=not secret, metadata={"spec": spec})


@dataclass_transform(frozen_default=True, field_specifiers=(setting,))
def declared_settings(cls: type[T]) -> type[T]:
    return dataclass(frozen=True)(cls)


def kind_of(kind: Any) -> tuple[type, bool]:
    """The value type of a setting's annotation, and whether it may be unset (X | None)."""
    if typing.get_origin(kind) in {types.UnionType, typing.Union}:
        (inner,) = [a for a in typing.get_args(kind) if a is not type(None)]
        return inner, True
    return typing.get_origin(kind) or kind, False


def redact_url(url: str) -> str:
    """Replace the password of a URL with ***."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def number_text(value: float) -> str:
    """A range's end as written: 2147482624, not 2.14748e+09; 0.25 as is."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def parse_value(spec: Spec, annotation: Any, given: str | None, problems: list[str]) -> Any:
    """The value of one setting from its text (its default when unset), or its default with a
    problem noted."""
    text = spec.default if given is None or given.strip() == "" else given.strip()
    kind, optional = kind_of(annotation)
    if optional and text == "":
        return None
    if kind is bool:
        if text.lower() in {"1", "true", "yes", "on"}:
            return True
        if text.lower() in {"0", "false", "no", "off"}:
            return False
        problems.append(f"{spec.name} must be true or false, got {text.lower()!r}")
        return spec.default == "true"
    if kind is frozenset:
        return frozenset(part.strip() for part in text.split(",") if part.strip())
    if kind in {int, float}:
        low = -math.inf if spec.low is None else spec.low
        high = math.inf if spec.high is None else spec.high
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            problems.append(
                f"{spec.name} must be {'an integer' if kind is int else 'a number'} from "
                f"{number_text(low)} to {number_text(high)}, got {text!r}"
            )
            return kind(spec.default)
        return value
    if spec.choices:
        by_key = {choice.lower(): choice for choice in spec.choices}
        if text.lower() not in by_key:
            problems.append(
                f"{spec.name} must be one of {', '.join(spec.choices)}, got {text.lower()!r}"
            )
            return spec.default
        return by_key[text.lower()]
    return text
