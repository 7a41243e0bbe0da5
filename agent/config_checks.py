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
    """The CA bundle and the end-of-life data file, read and parsed as a scan would."""
    out = []
    if cfg.agent.ca_bundle:
        from probes.tls.trust import ca_bundle_problem

        why = ca_bundle_problem(cfg.agent.ca_bundle)
        if why:
            out.append(f"agent.ca_bundle: {why}")
    if cfg.ports.eol_data:
        from agent.scanning.eol_file import data_problem

        why = data_problem(cfg.ports.eol_data)
        if why:
            out.append(f"ports.eol_data: {why}")
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
            from agent.targets import display_url

            out.append(f"assets[{i}].url: posture refuses to scan {display_url(spec.url.normalised)}: {host} is a "
                       f"{why}{hint}")
    return out
