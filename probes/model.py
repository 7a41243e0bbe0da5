"""Helpers for the probes' typed ``Settings`` and ``Observations`` (pure; stdlib only).

Each probe package exports two frozen dataclasses in its ``model`` module:

* ``Settings``: what ``[assets.settings.<probe>]`` / ``[<probe>]`` may say. Its
  :class:`Bound` limits are the only ones: the config layer validates a section by
  calling ``Settings.from_json`` (agent/config.py), and the probe reads the same type.
  ``from_json`` refuses unknown keys and values out of bounds with a ValueError
  naming ``section.key``; ``to_json`` gives the plain form stored with a scan's
  configuration (``Target.settings``).
* ``Observations``: what the probe saw, typed where another layer reads it. The
  probe builds it and serialises at the edge (``ProbeResult.observations`` stays
  JSON for storage); ``from_json`` reads stored rows of any age, and
  ``from_json(o.to_json()) == o`` and ``to_json(from_json(j)) == j`` hold, so the
  stored shape never changes. Keys a type does not model are kept in ``rest``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

JSON = Any


@dataclass(frozen=True)
class Bound:
    """Inclusive numeric limits of one setting (``above``: strictly greater than ``low``)."""

    low: float
    high: float
    above: bool = False

    def check(self, section: str, key: str, value: object, *, integer: bool = False) -> None:
        what = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
            raise ValueError(f"{section}.{key} must be {what}, not {value!r}")
        low_ok = value > self.low if self.above else value >= self.low
        if not low_ok or value > self.high:
            low = f"more than {self.low:g}" if self.above else f"at least {self.low:g}"
            raise ValueError(f"{section}.{key} must be {low} and at most {self.high:g}, not {value!r}")


def refuse_unknown(section: str, raw: Mapping[str, JSON], known: Iterable[str]) -> None:
    names = set(known)
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"{section}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(names))})")


def optional_path(section: str, key: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{section}.{key} must be a path")
    return value


def split(raw: Mapping[str, JSON], known: Iterable[str]) -> dict[str, JSON]:
    """The keys of ``raw`` a type does not model, in their stored order."""
    names = set(known)
    return {k: v for k, v in raw.items() if k not in names}


def text(value: JSON) -> str | None:
    return value if isinstance(value, str) else None


def integer(value: JSON) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def mapping(value: JSON) -> Mapping[str, JSON] | None:
    return value if isinstance(value, Mapping) else None


def instant(value: JSON) -> datetime | None:
    """An ISO 8601 time as stored (``Z`` or an offset; naive means UTC); None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
