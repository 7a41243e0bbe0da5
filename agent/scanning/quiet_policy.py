"""Which quiet windows apply to an asset, from the config: per asset, else per kind.

An asset's own ``quiet`` list wins (``quiet = []`` means none); otherwise
``[schedule.quiet]`` for its kind; otherwise the built-in default (kind
``trading``: the ``twse`` preset). Holidays from ``[schedule] holidays`` lift the
windows that start on them. The daemon waits for a window's end before it scans;
``posture scan`` skips active probes inside a window unless ``--force-active``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from agent.errors import ConfigError
from schedules.quiet import DEFAULT_FOR_KIND, QuietError, Window, parse_holidays, parse_windows, quiet_until

if TYPE_CHECKING:
    from agent.config import Config
    from agent.targets import AssetSpec


@dataclass
class QuietPolicy:
    tz: str
    holidays: frozenset[date] = frozenset()
    by_kind: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _parsed: dict[tuple[str, ...], tuple[Window, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Config) -> QuietPolicy:
        """The holiday file is read now: one that vanished since validation is a ConfigError."""
        holidays: frozenset[date] = frozenset()
        if cfg.schedule.holidays:
            from probes.files import CONFIG_MAX, FileRefused, read_text_capped

            try:
                holidays = parse_holidays(read_text_capped(cfg.schedule.holidays, CONFIG_MAX))
            except (FileRefused, QuietError) as exc:
                raise ConfigError(f"schedule.holidays: cannot read {cfg.schedule.holidays}: {exc}") from None
        by_kind: dict[str, tuple[str, ...]] = dict(DEFAULT_FOR_KIND)
        by_kind.update((kind, tuple(windows)) for kind, windows in cfg.schedule.quiet.items())
        return cls(cfg.agent.timezone, holidays, by_kind)

    def windows(self, spec: AssetSpec) -> tuple[Window, ...]:
        specs = spec.quiet if spec.quiet is not None else self.by_kind.get(spec.kind, ())
        if specs not in self._parsed:
            self._parsed[specs] = parse_windows(specs)
        return self._parsed[specs]

    def until(self, spec: AssetSpec, at: datetime) -> datetime | None:
        """When the asset's quiet hours covering ``at`` end, or None when it may be probed."""
        windows = self.windows(spec)
        return quiet_until(at, windows, self.tz, self.holidays) if windows else None

    def reason(self, spec: AssetSpec, at: datetime) -> str | None:
        """Why active probes must wait at ``at`` (for the scan record), or None."""
        end = self.until(spec, at)
        if end is None:
            return None
        local = end.astimezone(ZoneInfo(self.tz))
        return f"{spec.name} is in its quiet window until {local:%Y-%m-%d %H:%M} ({self.tz})"
