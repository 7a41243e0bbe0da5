"""The config's sections (one pydantic model each) and their shared validators; :mod:`agent.config`
composes them into :class:`agent.config.Config` and loads the file."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.targets import display_url, parse_target_url
from vocab import AssetKind, Severity

if TYPE_CHECKING:  # each probe's model is imported when its section holds a value (start-up: see _ProbeSection)
    from probes.http.model import Settings as HttpSettings
    from probes.ports.model import Settings as PortsSettings
    from probes.social.model import Settings as SocialSettings
    from probes.tls.model import Settings as TlsSettings

T = TypeVar("T")
Port = Annotated[int, Field(ge=1, le=65535)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentSection(_Strict):
    database: str | None = None
    ca_bundle: str | None = None
    resolver: str | None = None
    timezone: str = "Asia/Taipei"
    concurrency: int = Field(16, ge=1, le=1024)
    per_host_concurrency: int = Field(4, ge=1, le=64)
    host_budget: int = Field(300, ge=10, le=100_000)
    request_timeout: float = Field(15.0, gt=0, le=300)
    probe_timeout: float = Field(120.0, gt=0, le=3600)
    # Networks the address policy lets through (loopback, private, ... are refused otherwise).
    allow_addresses: list[str] = Field(default_factory=list)
    # Worker processes a scan of many assets may use: "auto" (one per CPU, at most 8) or 1..64;
    # 1 scans in this process only. Assets that share an address always share a process.
    processes: int | Literal["auto"] = "auto"

    @field_validator("allow_addresses")
    @classmethod
    def _allow(cls, v: list[str]) -> list[str]:
        return _networks(v)

    @field_validator("processes", mode="before")
    @classmethod
    def _processes(cls, v: Any) -> int | str:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 64):
            return v  # type: ignore[no-any-return]
        raise ValueError(f'processes must be "auto" or a whole number from 1 to 64, got {v!r}')

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("database")
    @classmethod
    def _database(cls, v: str | None) -> str | None:
        if v is not None:
            from state.engine import parse_url
            from state.errors import BadUrl

            _valid(parse_url, v, BadUrl)  # its message shows the URL masked
        return v

    @field_validator("resolver")
    @classmethod
    def _resolver(cls, v: str | None) -> str | None:
        if v is not None:
            from probes.net.dns import parse_resolver

            try:
                parse_resolver(v)
            except ValueError:
                raise ValueError(f"resolver must be IP[:PORT], got {v!r}") from None
        return v


class _ProbeSection(_Strict):
    """A probe's section: pydantic checks the shapes, the probe's own ``Settings.from_json`` the values,
    so each limit is defined once, by the probe (probes/<probe>/model.py).

    A section the config leaves at its defaults is not checked again at load: the defaults are
    the probe's own (a test holds each section's defaults to its probe), and a command that never
    runs the probe then never imports its model (``posture scan --probe tls`` and the ports probe's)."""

    def settings(self) -> object:
        raise NotImplementedError

    @model_validator(mode="after")
    def _probe_limits(self) -> _ProbeSection:
        if self.model_fields_set:
            self.settings()  # its ValueError names "section.key"
        return self


class TlsSection(_ProbeSection):
    expiry_warning_days: int = 30

    def settings(self) -> TlsSettings:
        from probes.tls.model import Settings as TlsSettings

        return TlsSettings.from_json(self.model_dump())


class HttpSection(_ProbeSection):
    http_port: int | None = None
    # HSTS max-age under this is too short (http.hsts.short_max_age) and keeps the TLS grade from A+:
    # "180d" style (s, m, h, d, w) or seconds; default 180 days. Passed to the tls probe too ("web").
    hsts_min_age: int | str | None = None

    def settings(self) -> HttpSettings:
        from probes.http.model import Settings as HttpSettings

        return HttpSettings.from_json(self.model_dump(exclude_none=True))


class SocialSection(_ProbeSection):
    max_pages: int = 30
    max_depth: int = 2
    browser: bool | Literal["auto"] = "auto"
    chromium: str | None = None  # path; default: Debian's /usr/bin/chromium when present
    page_timeout: float = 15.0
    launch_timeout: float = 20.0

    def settings(self) -> SocialSettings:
        from probes.social.model import Settings as SocialSettings

        return SocialSettings.from_json(self.model_dump(exclude_none=True))


class PortsSection(_ProbeSection):
    ports: list[int] | None = None  # default: probes/ports/ports.toml
    nmap_path: str | None = None
    max_rate: int = 200  # packets per second
    host_timeout: float = 60.0  # seconds per nmap run
    eol_data: str | None = None  # a refreshed end-of-life data file (posture eol refresh); passed as "eol"

    def settings(self) -> PortsSettings:
        from probes.ports.model import Settings as PortsSettings

        return PortsSettings.from_json(self.model_dump(exclude_none=True))


def _valid(parse: Callable[[Any], object], value: T, errors: type[Exception] | tuple[type[Exception], ...],
           prefix: str = "") -> T:
    """``value`` if ``parse`` accepts it; otherwise the parser's message as pydantic's ValueError."""
    try:
        parse(value)
    except errors as exc:
        raise ValueError(f"{prefix}{exc}") from None
    return value


def _plain(v: str, what: str = "name") -> str:
    """A name shown in logs and messages: printable, one line, no control or format characters."""
    import unicodedata

    if not v.strip() or len(v) > 200:
        raise ValueError(f"{what} must be 1 to 200 characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in v):
        raise ValueError(f"{what} must not contain control characters (newline, tab, escape, ...)")
    return v


def _schedule(v: str) -> str:
    from schedules.timing import ScheduleError, parse_schedule

    return _valid(parse_schedule, v, ScheduleError)


class ScheduleSection(_Strict):
    scan_every: str = "7d"  # a duration (s, m, h, d, w) or a 5-field cron expression
    cadence_days: int = Field(183, ge=1, le=3650)
    cadence_warn_days: int = Field(14, ge=0, le=365)
    digest: str = "weekly"  # "weekly" (Monday 09:00 in the agent's time zone), a cron expression, or "off"
    jitter: str = "10m"
    holidays: str | None = None  # a file of YYYY-MM-DD dates on which quiet windows are lifted
    quiet: dict[AssetKind, list[str]] = Field(default_factory=dict)  # windows by kind

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, v: str | None) -> str | None:
        if v is not None:
            from probes.files import CONFIG_MAX, FileRefused, read_text_capped
            from schedules.quiet import QuietError, parse_holidays

            try:
                parse_holidays(read_text_capped(v, CONFIG_MAX))
            except FileRefused as exc:
                raise ValueError(f"cannot read holiday file {exc}") from None
            except QuietError as exc:
                raise ValueError(f"{v}: {exc}") from None
        return v

    @field_validator("quiet")
    @classmethod
    def _quiet_by_kind(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        from schedules.quiet import QuietError, parse_windows

        for kind, windows in v.items():
            _valid(parse_windows, windows, QuietError, f"{kind}: ")
        return v

    @field_validator("scan_every")
    @classmethod
    def _scan_every(cls, v: str) -> str:
        return _schedule(v)

    @field_validator("digest")
    @classmethod
    def _digest(cls, v: str) -> str:
        from schedules.timing import ScheduleError, parse_digest

        return _valid(parse_digest, v, ScheduleError)

    @field_validator("jitter")
    @classmethod
    def _jitter(cls, v: str) -> str:
        from schedules.timing import ScheduleError, parse_duration

        if v.strip() in ("0", "off"):
            return v
        return _valid(parse_duration, v, ScheduleError)


class WatchSection(_Strict):
    """Phishing and impersonation watch (issue 18): DNS only, through [agent] resolver."""

    domains: list[str] = Field(default_factory=list)  # the firm's own registered domains
    allow: list[str] = Field(default_factory=list)  # lookalikes the firm owns itself
    every: str = "1d"  # a duration: how often the daemon watches (its own schedule)
    rate: float = Field(50.0, gt=0, le=10_000)  # DNS queries per second
    concurrency: int = Field(8, ge=1, le=256)  # DNS queries in flight at once
    timeout: float = Field(3.0, gt=0, le=60)  # seconds per query

    @field_validator("domains", "allow")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        from probes.net.scope import normalise_host

        out = []
        for raw in v:
            name = normalise_host(raw)
            if "." not in name or not all(c.isalnum() or c in ".-" for c in name) or not name.isascii():
                raise ValueError(f"{raw!r} is not a domain name")
            out.append(name)
        return list(dict.fromkeys(out))

    @field_validator("every")
    @classmethod
    def _every(cls, v: str) -> str:
        from schedules.timing import ScheduleError, parse_duration

        return _valid(parse_duration, v, ScheduleError)


Days = Annotated[int, Field(ge=0, le=3650)]  # deadlines past ten years are typos, and overflow dates


class RemediationSection(_Strict):
    critical: Days | None = 7
    high: Days | None = 30
    medium: Days | None = 90
    low: Days | None = 180
    info: Days | None = None
    reopened_keeps_deadline: bool = True
    kinds: dict[AssetKind, dict[Severity, Days]] = Field(default_factory=dict)


class NotifySection(_Strict):
    url: str  # an Apprise URL; it may hold secrets, which posture never shows
    name: str | None = None  # shown beside scheme://host wherever the channel is named
    events: list[Literal["alert", "digest"]] = Field(default_factory=lambda: ["alert", "digest"])  # type: ignore[arg-type]
    min_severity: Severity = Severity.INFO  # the least severe new finding alerted at once (default: all)
    language: Literal["zh-TW", "en"] = "zh-TW"
    max_items: int = Field(20, ge=1, le=500)  # items listed in one grouped alert; the rest are counted

    @field_validator("url")
    @classmethod
    def _apprise_url(cls, v: str) -> str:
        scheme, sep, rest = v.strip().partition("://")
        if not sep or not scheme.replace("+", "").replace("-", "").isalnum() or not rest:
            # Never echo the value: a notification URL carries tokens and passwords.
            raise ValueError(f"not an Apprise URL (scheme://...){' (scheme ' + scheme + ')' if sep else ''}")
        return v.strip()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else _plain(v)


def _networks(v: list[str]) -> list[str]:
    from probes.net.scope import parse_networks

    return [str(n) for n in parse_networks(v)]


def _origins(v: list[str]) -> list[str]:
    """``https://static.example`` -> normalised origin URLs; ValueError on anything else."""
    from probes.net.scope import format_origin, origin_of

    out = []
    for raw in v:
        try:
            parts = urlsplit(raw.strip())
            credentials = parts.username or parts.password
        except ValueError:
            raise ValueError(f"origin {display_url(raw)!r} is not a URL") from None
        origin = origin_of(raw)
        if origin is None or credentials or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"origin {display_url(raw)!r} must be scheme://host[:port] with scheme http or "
                             "https (no user, password, path or query)") from None
        out.append(format_origin(origin))
    return out


class Declared(_Strict):
    ddos: str | None = None
    waf: str | None = None


class AssetSection(_Strict):
    url: str
    name: str | None = None
    kind: AssetKind = AssetKind.WEBSITE  # website, trading or api ("watch" is the phishing watch's own)
    allowed_ports: list[Port] | None = None
    active_probes: bool = True
    declared: Declared = Declared()
    quiet: list[str] | None = None
    scan_every: str | None = None
    ports: list[Port] | None = None  # ports to scan on this asset (default: [ports] ports)
    allow_addresses: list[str] = Field(default_factory=list)  # added to [agent] allow_addresses
    addresses: list[str] | None = None  # expected addresses/networks: DNS answers outside are refused
    origins: list[str] = Field(default_factory=list)  # other origins the asset's pages may reach

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: AssetKind) -> AssetKind:
        if v is AssetKind.WATCH:
            raise ValueError("'watch' is the phishing watch's own kind: use website, trading or api")
        return v

    @field_validator("allow_addresses")
    @classmethod
    def _allow(cls, v: list[str]) -> list[str]:
        return _networks(v)

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _networks(v)

    @field_validator("origins")
    @classmethod
    def _origin_list(cls, v: list[str]) -> list[str]:
        return _origins(v)

    @field_validator("scan_every")
    @classmethod
    def _scan_every(cls, v: str | None) -> str | None:
        return None if v is None else _schedule(v)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else _plain(v)

    @field_validator("quiet")
    @classmethod
    def _quiet(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            from schedules.quiet import QuietError, parse_windows

            _valid(parse_windows, v, QuietError)
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        from agent.errors import UsageError

        return _valid(parse_target_url, v, UsageError)


class MetricsSection(_Strict):
    # host:port (IPv6 as [addr]:port) where `posture run` serves Prometheus metrics; None: off.
    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is not None:
            from agent.monitoring.listen import parse_listen

            _valid(parse_listen, v, ValueError)
        return v
class WorkersSection(_Strict):
    """PostgreSQL only, with ``fleet = true``: scans run as procrastinate tasks (``posture run``
    schedules, ``posture worker`` scans). Off by default: the fleet scheduler does not yet run
    the phishing watch, the dead-man alerts or the Prometheus endpoint that the one-process
    daemon runs, so a database shared by plain ``posture run`` daemons keeps them."""

    fleet: bool = False  # PostgreSQL: scheduler + ``posture worker`` processes over procrastinate
    concurrency: int = Field(4, ge=1, le=256)  # scans one worker process runs at once
    stall_timeout: float = Field(60.0, ge=2.0, le=86400.0)  # seconds without a heartbeat: a worker is dead
    in_process: bool = True  # ``posture run`` on PostgreSQL also runs workers (False: scheduler only)


DutyName = Literal["scan", "pentest", "drill", "health-check", "ddos-drill", "declaration"]


class FirmSection(_Strict):
    """The firm and its compliance calendar (schedules.duties): periods default by tier."""

    tier: int = Field(2, ge=1, le=4)  # 資安分級 (seeds 000, 002)
    name: str | None = None
    periods: dict[DutyName, Annotated[int, Field(ge=0, le=120)]] = Field(default_factory=dict)  # months; 0: none
    warn_days: int = Field(30, ge=0, le=365)  # a duty is due soon this many days before its due date
    pack_dir: str | None = None  # where the daemon builds declaration packs (default: beside the database)
    remind_days: int = Field(2, ge=0, le=9)  # remind an unfiled declaration this many days before the window closes

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else _plain(v)
