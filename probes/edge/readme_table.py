"""The README's WAF and CDN signature table, rendered from the data file (scripts/readme.py)."""

from __future__ import annotations

from probes.edge.compare import SIMILAR
from probes.edge.judge import BLOCK_STATUSES, GATEWAY_STATUSES
from probes.edge.signatures import Signal, SignatureSet, load_signatures


def signatures_markdown(signatures: SignatureSet | None = None) -> str:
    """The README section listing vendors and their signals, from the data file."""
    sigs = signatures or load_signatures()
    order = {s: i for i, s in enumerate(Signal)}
    rows = sorted(sigs.signatures, key=lambda s: (s.vendor.lower(), order[s.signal], s.pattern_text))
    lines = [
        "### WAF and CDN signatures",
        "",
        f"Generated from `probes/edge/signatures.toml` (version {sigs.version}); "
        f"{len(sigs.vendors())} vendors, {len(rows)} signals. A vendor is named when one of its "
        "conclusive signals matches; hints are recorded but never clear a finding. Roles: `waf` is a marker "
        "only the WAF product emits and proves a WAF; `cdn` proves a CDN; `both` is a CDN that also sells a "
        "WAF: it proves the CDN, and the WAF only when the attack request is seen blocked (otherwise "
        "`edge.waf.absent` stands with the note that the WAF may be off or in log-only mode); `proxy` is a "
        "load balancer or access gateway, named but proving neither. A block-page marker counts only on an "
        "error page or on the attack response, and only when the page as normally served (the baseline, the "
        "control) does not carry it: a page that merely mentions a vendor names nothing. Independently of "
        "vendors, a WAF is proven when the active probe's attack request is blocked while the harmless "
        "control is not: "
        f"a block status ({', '.join(str(s) for s in sorted(BLOCK_STATUSES))}), a dropped connection, a "
        "vendor's block page, or a page unlike the control's (status, or word-set similarity below "
        f"{SIMILAR}) carrying block-page words, whatever its status. A gateway's own "
        f"{'/'.join(str(s) for s in sorted(GATEWAY_STATUSES))} and a Server header that changed alone are "
        "not blocks.",
        "",
        f"Vendors: {', '.join(sigs.vendors())}.",
        "",
        "| Vendor | Role | Signal | Pattern | Conclusive | Source |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in rows:
        cells = [s.vendor, s.role.value, s.signal.value, f"`{s.pattern_text}`",
                 "yes" if s.conclusive else "hint", s.source]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    # GitHub tables split on "|" even inside code spans; "\|" is the only escape needed.
    return text.replace("|", "\\|").replace("\n", " ")
