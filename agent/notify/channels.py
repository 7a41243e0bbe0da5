"""Notification channels: the ``[[notify]]`` entries, their masked labels, and sending.

A channel's URL usually carries a token or a password, in its user, password, host
(``discord://ID/TOKEN``), path or query values. posture shows and stores a channel
only as its scheme and host plus the name the user gave it (``soc-webhook
(json://hooks.example.test:8443)``); the host too is masked when Apprise treats it as a
token, or when it is not a host name with a dot, ``localhost`` or an IP address (an ntfy
topic in host position is its password). Nothing else of the URL is ever printed, logged or stored: the channel is
identified in the database by a hash, and every other part of every URL (user,
password, path segments, query keys and values) is scrubbed from whatever text leaves
a send (Apprise's warnings, exceptions) before it is logged, stored or printed.
Apprise's own privacy rendering is not relied on: it keeps ``json://`` paths and
query values.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from vocab import mask, one_line, severity_rank

if TYPE_CHECKING:
    from agent.config import Config

_TOKEN_SPLIT = re.compile(r"[/:@?&=#,;+\s]+")
_MIN_SECRET = 3  # shorter fragments would scrub ordinary words out of messages


class Format(enum.StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"


@dataclass(frozen=True)
class Channel:
    index: int  # position in the config, for messages ("notify[1]")
    url: str = field(repr=False)  # never printed: use label
    events: frozenset[str] = frozenset({"alert", "digest"})
    min_severity: str = "info"
    language: str = "zh-TW"
    max_items: int = 20
    name: str | None = None  # what the user calls it ([[notify]] name), shown beside the masked URL

    @property
    def id(self) -> str:
        """Stable identity in the delivery log (the URL itself is never stored)."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:32]

    @cached_property
    def _masked(self) -> tuple[str, frozenset[str], Format | None]:
        return describe(self.url)

    @property
    def label(self) -> str:
        """scheme://host, with the user's name for the channel in front when it has one."""
        return f"{self.name} ({self._masked[0]})" if self.name else self._masked[0]

    @property
    def secrets(self) -> frozenset[str]:
        return self._masked[1]

    @property
    def format(self) -> Format | None:
        """What the channel takes natively; None when Apprise cannot use the URL."""
        return self._masked[2]

    def wants(self, event: str) -> bool:
        return event in self.events

    def hears(self, severity: str) -> bool:
        """Whether a new finding of this severity is alerted on this channel."""
        return severity_rank(severity) >= severity_rank(self.min_severity)


def channels(cfg: Config) -> list[Channel]:
    return [
        Channel(i, n.url, frozenset(n.events), n.min_severity, n.language, n.max_items, n.name)
        for i, n in enumerate(cfg.notify)
    ]


def _log_capture(apprise: Any, level: int) -> Any:
    """Apprise's log capture (a context manager yielding a StringIO), untyped upstream."""
    capture: Any = apprise.LogCapture
    return capture(level=level)


def _plugin(url: str) -> Any:
    import apprise

    apprise_log = logging.getLogger("apprise")
    propagate, apprise_log.propagate = apprise_log.propagate, False
    try:
        with _log_capture(apprise, logging.ERROR):  # a bad URL is reported by us, masked
            return apprise.Apprise.instantiate(url)
    finally:
        apprise_log.propagate = propagate


def _tokens(text: str) -> set[str]:
    out: set[str] = set()
    for t in _TOKEN_SPLIT.split(text):
        if t:
            out.update({t, unquote(t), quote(unquote(t), safe="")})
    return out


def _host_port(url: str) -> tuple[str | None, str | None]:
    """The URL's host and port as written, when they parse (a token in host position may not)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None, None
    return host, (str(port) if port is not None else None)


def mask_url(url: str, shown_host: str | None) -> str:
    """``scheme://host[:port]`` of a URL, or ``scheme://****`` when its host is not to be shown."""
    scheme = url.partition("://")[0].strip().lower() or "?"
    if not re.fullmatch(r"[a-z0-9+.-]{1,32}", scheme):
        scheme = "?"
    host, port = _host_port(url)
    if not host or host != shown_host or not re.fullmatch(r"[A-Za-z0-9._:-]{1,253}", host):
        return f"{scheme}://****"
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}{':' + port if port else ''}"


def is_host(text: str) -> bool:
    """Whether a URL's host position holds a real host: a DNS name with a dot, ``localhost``, or an IP
    address. Apprise's privacy rendering shows some tokens there (``ntfy://TOPIC``, whose topic is its
    password on ntfy.sh; ``lametric://TOKEN@APP_ID``); a one-label word is taken for one of them."""
    import ipaddress

    name = text.rstrip(".").lower()
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return name == "localhost" or ("." in name and all(label for label in name.split(".")))


def describe(url: str) -> tuple[str, frozenset[str], Format | None]:
    """(masked label, secrets, native format) of an Apprise URL.

    The label is ``scheme://host[:port]``; the host is shown only when Apprise's privacy
    rendering shows it too (for ``discord://ID/TOKEN`` or ``tgram://BOT:TOKEN/`` the
    "host" is a token) and it is a host (:func:`is_host`: ``ntfy://TOPIC`` is masked). The
    secrets are every other part of the URL: user, password, path segments, query keys and
    values, in raw, decoded and encoded forms.
    """
    scheme = url.partition("://")[0]
    rest = url.partition("://")[2]
    plugin = _plugin(url)
    shown_host: str | None = None
    if plugin is not None:
        host, _ = _host_port(url)
        shown, _ = _host_port(str(plugin.url(privacy=True)))
        if host and shown and host.lower() == shown.lower() and is_host(host):
            shown_host = host
    label = mask_url(url, shown_host)
    host, port = _host_port(url)
    keep = {scheme, scheme.lower()} | ({shown_host, shown_host.lower()} if shown_host else set()) | (
        {port} if port and shown_host else set())
    secrets = {t for t in _tokens(rest) if len(t) >= _MIN_SECRET and t not in keep}
    if shown_host:  # "host:port" and "user@host" split apart above; the host alone is public
        secrets.discard(shown_host)
    elif host and len(host) >= _MIN_SECRET:  # a token in host position, also as urlsplit lower-cases it
        secrets.add(host)
    try:
        parts = urlsplit(url)
        for part in (parts.username, parts.password):
            if part:
                secrets.update({part, unquote(part)})
    except ValueError:
        pass
    return label, frozenset(s for s in secrets if s), _native_format(plugin) if plugin is not None else None


def _native_format(plugin: Any) -> Format:
    resolve = getattr(plugin, "resolve_format", None)
    native = resolve(None) if callable(resolve) else plugin.notify_format
    if isinstance(native, list | tuple):  # older Apprise: a tuple of formats, the first the default
        native = native[0]
    value = str(getattr(native, "value", native))
    return Format(value) if value in Format.__members__.values() else Format.TEXT


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ****, longest first (one may contain another)."""
    return mask(text, secrets)


@dataclass(frozen=True)
class SendResult:
    channel: Channel
    ok: bool
    error: str | None = None  # one line, secrets scrubbed


@dataclass(frozen=True)
class Message:
    title: str
    text: str  # plain text
    markdown: str  # for channels that take Markdown or HTML (Apprise converts it to HTML)
    kind: str = "info"  # Apprise notify type: info | warning | failure | success


def send(channel: Channel, message: Message, all_secrets: Sequence[str] = ()) -> SendResult:
    """Deliver one message to one channel; never raises, never lets a secret out."""
    secrets = set(channel.secrets) | set(all_secrets)
    try:
        return _send(channel, message, secrets)
    except Exception as exc:  # Apprise or a plugin failing in a way of its own: a failed delivery
        text = one_line(exc, named=True, secrets=secrets)
        return SendResult(channel, False, text)


def _send(channel: Channel, message: Message, secrets: set[str]) -> SendResult:
    import apprise

    fmt = channel.format
    if fmt is None:
        return SendResult(channel, False, f"Apprise cannot use the URL {channel.label}")
    rich = fmt in (Format.MARKDOWN, Format.HTML)
    notifier = apprise.Apprise()
    # Apprise's debug log prints whole request URLs, tokens included: capture warnings
    # only, and keep all of it away from whatever handlers the process has configured.
    apprise_log = logging.getLogger("apprise")
    propagate, apprise_log.propagate = apprise_log.propagate, False
    # urllib3 (under Apprise's requests) logs each request line, path and query included.
    wire = [logging.getLogger(n) for n in ("urllib3", "requests")]
    wire_levels = [(w, w.propagate, w.disabled) for w in wire]
    for w in wire:
        w.propagate, w.disabled = False, True
    try:
        with _log_capture(apprise, logging.WARNING) as logs:
            if not notifier.add(channel.url):
                return SendResult(channel, False, f"Apprise cannot use the URL {channel.label}")
            ok = bool(notifier.notify(
                body=message.markdown if rich else message.text,
                title=message.title,
                body_format=apprise.NotifyFormat.MARKDOWN if rich else apprise.NotifyFormat.TEXT,
                notify_type=message.kind,
            ))
            captured = logs.getvalue()
    finally:
        apprise_log.propagate = propagate
        for w, was_propagating, was_disabled in wire_levels:
            w.propagate, w.disabled = was_propagating, was_disabled
    if ok:
        return SendResult(channel, True)
    lines = [ln.split(" - ", 2)[-1].strip() for ln in captured.splitlines() if " - " in ln]
    why = lines[-1] if lines else "the service did not accept the message"
    return SendResult(channel, False, scrub(" ".join(why.split()), secrets)[:300])
