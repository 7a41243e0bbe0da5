"""The social probe's typed ``Settings`` and ``Observations`` (see :mod:`probes.model`).

Stored shape of the observations::

    {"mode": "browser"|"static-only", "settings": {...}, "data_version", "mode_reason"?,
     "crawl"?: {...}, "pages"?: [URL], "links": [...], "interstitials": [...],
     "browser"?: {...}, "static_vs_browser"?: [...], "stage", "seconds"}
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from probes.model import JSON, mapping, split, text

#: Evidence keys that summarise a social finding in one line (agent/output.py).
SUMMARY_KEYS = ("platform",)


class BrowserChoice(enum.StrEnum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


@dataclass(frozen=True)
class Settings:
    max_pages: int = 30
    max_depth: int = 2
    browser: BrowserChoice = BrowserChoice.AUTO
    chromium: str | None = None
    page_timeout: float = 15.0
    launch_timeout: float = 20.0

    @classmethod
    def parse(cls, raw: Mapping[str, JSON]) -> Settings:
        """Settings from ``[assets.settings.social]``; ValueError names the bad key."""
        known = {"max_pages", "max_depth", "browser", "chromium", "page_timeout", "launch_timeout"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"social: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        browser = raw.get("browser", "auto")
        if browser is True or browser == "true":
            choice = BrowserChoice.ON
        elif browser is False or browser == "false":
            choice = BrowserChoice.OFF
        elif browser == "auto":
            choice = BrowserChoice.AUTO
        else:
            raise ValueError(f"social.browser must be true, false or \"auto\", not {browser!r}")
        chromium = raw.get("chromium")
        if chromium is not None and (not isinstance(chromium, str) or not chromium):
            raise ValueError("social.chromium must be the path of the Chromium executable")
        return cls(
            max_pages=_int(raw, "max_pages", 30, 1, 1000),
            max_depth=_int(raw, "max_depth", 2, 0, 10),
            browser=choice,
            chromium=chromium,
            page_timeout=_float(raw, "page_timeout", 15.0, 1.0, 300.0),
            launch_timeout=_float(raw, "launch_timeout", 20.0, 1.0, 300.0),
        )

    SECTION: ClassVar[str] = "social"

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Settings:
        return cls.parse(raw)

    def to_json(self) -> dict[str, JSON]:
        """The settings as ``[social]`` writes them (``from_json(s.to_json()) == s``)."""
        browser = {BrowserChoice.ON: True, BrowserChoice.OFF: False}.get(self.browser, "auto")
        out: dict[str, JSON] = {"max_pages": self.max_pages, "max_depth": self.max_depth, "browser": browser,
                                "page_timeout": self.page_timeout, "launch_timeout": self.launch_timeout}
        if self.chromium is not None:
            out["chromium"] = self.chromium
        return out

    def observed_json(self) -> dict[str, JSON]:
        """The part of the settings a run records in its observations (``observations.settings``)."""
        return {"max_pages": self.max_pages, "max_depth": self.max_depth, "browser": self.browser.value,
                "page_timeout": self.page_timeout}


def _int(raw: Mapping[str, JSON], key: str, default: int, low: int, high: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"social.{key} must be an integer, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"social.{key} must be between {low} and {high}, not {value}")
    return value


def _float(raw: Mapping[str, JSON], key: str, default: float, low: float, high: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"social.{key} must be a number of seconds, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"social.{key} must be between {low:g} and {high:g}, not {value}")
    return float(value)


@dataclass(frozen=True)
class Observations:
    mode: str | None = None
    settings: Mapping[str, JSON] = field(default_factory=dict)  # Settings.observed_json() of the run
    data_version: str | None = None
    mode_reason: str | None = None
    crawl: Mapping[str, JSON] | None = None
    pages: tuple[str, ...] | None = None  # crawled pages, in crawl order
    links: tuple[JSON, ...] = ()
    interstitials: tuple[JSON, ...] = ()
    browser: Mapping[str, JSON] | None = None
    static_vs_browser: tuple[JSON, ...] | None = None
    stage: str | None = None
    seconds: float | None = None
    rest: Mapping[str, JSON] = field(default_factory=dict)

    _KEYS: ClassVar[tuple[str, ...]] = ("mode", "settings", "data_version", "mode_reason", "crawl", "pages", "links",
                                        "interstitials", "browser", "static_vs_browser", "stage", "seconds")

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Observations:
        pages, versus, seconds = raw.get("pages"), raw.get("static_vs_browser"), raw.get("seconds")
        links, inter = raw.get("links"), raw.get("interstitials")
        return cls(
            mode=text(raw.get("mode")),
            settings=dict(mapping(raw.get("settings")) or {}),
            data_version=text(raw.get("data_version")),
            mode_reason=text(raw.get("mode_reason")),
            crawl=mapping(raw.get("crawl")),
            pages=tuple(str(p) for p in pages) if isinstance(pages, list) else None,
            links=tuple(links) if isinstance(links, list) else (),
            interstitials=tuple(inter) if isinstance(inter, list) else (),
            browser=mapping(raw.get("browser")),
            static_vs_browser=tuple(versus) if isinstance(versus, list) else None,
            stage=text(raw.get("stage")),
            seconds=seconds if isinstance(seconds, int | float) and not isinstance(seconds, bool) else None,
            rest=split(raw, cls._KEYS),
        )

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {}
        if self.mode is not None:
            out["mode"] = self.mode
        out["settings"] = dict(self.settings)
        if self.data_version is not None:
            out["data_version"] = self.data_version
        if self.mode_reason is not None:
            out["mode_reason"] = self.mode_reason
        if self.crawl is not None:
            out["crawl"] = dict(self.crawl)
        if self.pages is not None:
            out["pages"] = list(self.pages)
        out["links"] = list(self.links)
        out["interstitials"] = list(self.interstitials)
        if self.browser is not None:
            out["browser"] = dict(self.browser)
        if self.static_vs_browser is not None:
            out["static_vs_browser"] = list(self.static_vs_browser)
        if self.stage is not None:
            out["stage"] = self.stage
        if self.seconds is not None:
            out["seconds"] = self.seconds
        out.update(self.rest)
        return out
