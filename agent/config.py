"""The TOML config, validated: an unknown key or a bad value is an error naming the key."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from agent.config_sections import (
    AgentSection,
    AssetSection,
    FirmSection,
    HttpSection,
    MetricsSection,
    NotifySection,
    PortsSection,
    RemediationSection,
    ScheduleSection,
    SocialSection,
    TlsSection,
    WatchSection,
    WorkersSection,
    _Strict,
)
from agent.errors import ConfigError
from agent.targets import AssetSpec, display_url, parse_target_url
from probes.net.web import SHARED_SECTION as WEB_SECTION
from vocab import Severity


class Config(_Strict):
    agent: AgentSection = AgentSection()
    tls: TlsSection = TlsSection()
    http: HttpSection = HttpSection()
    social: SocialSection = SocialSection()
    ports: PortsSection = PortsSection()
    severity: dict[str, Severity] = Field(default_factory=dict)
    schedule: ScheduleSection = ScheduleSection()
    remediation: RemediationSection = RemediationSection()
    notify: list[NotifySection] = Field(default_factory=list)
    assets: list[AssetSection] = Field(default_factory=list)
    metrics: MetricsSection = MetricsSection()
    firm: FirmSection | None = None  # the compliance calendar alerts and builds packs only when set
    watch: WatchSection = WatchSection()
    workers: WorkersSection = WorkersSection()  # PostgreSQL: procrastinate workers

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        urls: dict[str, int] = {}
        for i, a in enumerate(self.assets):
            normalised = parse_target_url(a.url).normalised
            name = a.name or normalised
            if normalised in urls:  # https://x.test/ and https://X.test:443 are one service
                raise ValueError(f"assets[{i}].url: the same asset as assets[{urls[normalised]}] "
                                 f"({normalised} once normalised)")
            urls[normalised] = i
            if name in seen:
                raise ValueError(f"assets[{i}].name: duplicate asset name {name!r}")
            seen.add(name)
        return self

    @field_validator("severity")
    @classmethod
    def _known_checks(cls, v: dict[str, str]) -> dict[str, str]:
        from probes.catalog import load_catalog

        catalog = load_catalog()
        for check_id in v:
            if check_id not in catalog:
                raise ValueError(f"unknown check id {check_id!r}")
        return v

    def firm_settings(self) -> FirmSection:
        """``[firm]``, or its defaults (tier 2) when the config has none."""
        return self.firm or FirmSection()

    def asset_specs(self) -> list[AssetSpec]:
        specs = []
        for a in self.assets:
            parsed = parse_target_url(a.url)
            specs.append(
                AssetSpec(
                    # Unnamed: named by its URL as shown (query values masked: the name is printed,
                    # logged, alerted and stored; a token in the URL must not be).
                    name=a.name or display_url(parsed.normalised),
                    url=parsed,
                    kind=a.kind,
                    allowed_ports=frozenset(a.allowed_ports) if a.allowed_ports is not None else None,
                    active_probes=a.active_probes,
                    declared={k: v for k, v in a.declared.model_dump().items() if v},
                    configured=True,
                    quiet=tuple(a.quiet) if a.quiet is not None else None,
                    scan_every=a.scan_every,
                    scan_ports=tuple(a.ports) if a.ports is not None else None,
                    allow_addresses=tuple(a.allow_addresses),
                    addresses=tuple(a.addresses) if a.addresses is not None else None,
                    origins=tuple(a.origins),
                )
            )
        return specs

    def probe_settings(self) -> dict[str, dict[str, Any]]:
        out = {
            "tls": self.tls.model_dump(),
            "http": self.http.model_dump(exclude_none=True),
            "social": self.social.model_dump(exclude_none=True),
            "ports": self.ports.model_dump(exclude_none=True),
        }
        # Settings more than one probe reads, passed to each (no probe reads another's section).
        if self.http.hsts_min_age is not None:
            out[WEB_SECTION] = {"hsts_min_age": self.http.hsts_min_age}
        if self.ports.eol_data is not None:
            from probes.eol.model import Settings as EolSettings

            out[EolSettings.SECTION] = EolSettings(self.ports.eol_data).to_json()
        return out


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_config(text: str, source: str = "<config>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid TOML: nested too deeply") from None
    try:
        return Config.model_validate(raw)
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = _loc(tuple(first["loc"]))
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown key"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        if not where and msg.startswith("assets["):  # a whole-config check names its key in the message
            where, _, msg = msg.partition(": ")
        raise ConfigError(f"{source}: {where + ': ' if where else ''}{msg}{more}") from None


def load_config(path: str | None) -> tuple[Config, str]:
    """Load the config (or the defaults when no file); returns it with its hash."""
    path = path or os.environ.get("POSTURE_CONFIG")
    if not path:
        default = _default_config_path()
        if default is None:
            cfg = Config()
            return cfg, config_hash(cfg)
        path = str(default)
    from probes.files import CONFIG_MAX, FileRefused, read_text_capped

    p = Path(path)
    if not os.path.lexists(p):
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = read_text_capped(p, CONFIG_MAX)
    except FileRefused as exc:
        raise ConfigError(f"cannot read config file {exc}") from None
    cfg = parse_config(text, str(p))
    return cfg, config_hash(cfg)


def _default_config_path() -> Path | None:
    """systemd's ConfigurationDirectory, then the user's config dir, if a file is there."""
    candidates = []
    if os.environ.get("CONFIGURATION_DIRECTORY"):
        candidates.append(Path(os.environ["CONFIGURATION_DIRECTORY"].split(":")[0]) / "posture.toml")
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    candidates.append(Path(xdg) / "posture" / "posture.toml")
    return next((c for c in candidates if c.is_file()), None)


def config_hash(cfg: Config) -> str:
    canonical = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
