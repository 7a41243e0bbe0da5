"""What ``posture config check`` finds beyond parsing: what would fail later, said now.

Each problem names the config key it is about (``notify[1]``, ``agent.ca_bundle``,
``assets[2].url``) and never shows a notification URL beyond its masked label.
No DNS query is sent: a host name is judged at scan time, when it is resolved;
an address given as an IP literal (or ``localhost``) is judged here.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config import Config

# RFC 6761: these names are loopback wherever they are resolved; no query needed to judge them.
_LOOPBACK_NAMES = ("localhost",)


def config_source(path: str | None) -> Path | None:
    """The file ``load_config(path)`` reads: --config, POSTURE_CONFIG, then the default places; None: none."""
    from agent.config import _default_config_path

    given = path or os.environ.get("POSTURE_CONFIG")
    return Path(given) if given else _default_config_path()


def problems(cfg: Config) -> list[str]:
    """Every problem found, one line each, in config order."""
    return [*_file_problems(cfg), *_notify_problems(cfg), *_asset_problems(cfg)]


def _file_problems(cfg: Config) -> list[str]:
    from probes.files import DATA_MAX, FileRefused, read_capped

    out = []
    for key, path in (("agent.ca_bundle", cfg.agent.ca_bundle), ("ports.eol_data", cfg.ports.eol_data)):
        if not path:
            continue
        try:
            read_capped(path, DATA_MAX)
        except FileRefused as exc:
            out.append(f"{key}: {exc}")
    return out


@cache
def _apprise_schemes() -> frozenset[str]:
    import apprise

    known: set[str] = set()
    for schema in apprise.Apprise().details().get("schemas", []):
        for key in ("protocols", "secure_protocols"):
            value = schema.get(key) or ()
            known.update([value] if isinstance(value, str) else value)
    return frozenset(s.lower() for s in known)


def _notify_problems(cfg: Config) -> list[str]:
    from agent.notify.channels import channels

    out = []
    for c in channels(cfg):
        where = f"notify[{c.index}]" + (f" ({c.name})" if c.name else "")
        scheme = c.url.partition("://")[0].lower()
        if scheme not in _apprise_schemes():
            out.append(f"{where}: Apprise has no service for the scheme {scheme!r}")
        elif c.format is None:  # Apprise knows the scheme but cannot build a notifier from the URL
            out.append(f"{where}: Apprise cannot use this {scheme}:// URL (a required part is missing or "
                       "malformed; see Apprise's documentation for the service)")
    return out


def _asset_problems(cfg: Config) -> list[str]:
    import ipaddress

    from probes.net.scope import env_allow, parse_networks, refusal_reason

    try:
        env = env_allow()
    except ValueError:
        env = ()
    shared = (*parse_networks(cfg.agent.allow_addresses), *env)
    out = []
    for i, (section, spec) in enumerate(zip(cfg.assets, cfg.asset_specs(), strict=True)):
        host = spec.url.host
        literal = host.strip("[]")
        try:
            ipaddress.ip_address(literal.split("%", 1)[0])
        except ValueError:
            if host.rstrip(".") in _LOOPBACK_NAMES or host.rstrip(".").endswith(".localhost"):
                literal = "127.0.0.1"
            else:
                continue  # a name: judged when it is resolved, at scan time
        why = refusal_reason(literal, (*shared, *parse_networks(section.allow_addresses)))
        if why:
            from probes.net.scope import NEVER_REASONS, STRICT_REASONS

            hint = ("" if any(why.startswith(r) for r in (*STRICT_REASONS, *NEVER_REASONS))
                    else " (allow_addresses lets it through, if it truly is the firm's asset)")
            out.append(f"assets[{i}].url: posture refuses to scan {spec.url.normalised}: {host} is a {why}{hint}")
    return out
