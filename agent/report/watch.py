"""The evidence report's watch section (issue 18): per watched domain, the newest watch up to the
report's moment, the lookalikes found with their records, and what was decided about each.

Kept apart from the per-asset sections: it reads what the watch stored (its ``lookalike`` and
``mail`` runs) and the states the report already computed for the watch's findings.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

from agent.report.model import WatchEntry

if TYPE_CHECKING:
    from agent.config import Config
    from agent.report.model import AssetReport, FindingEntry
    from state.store import Store

_TEXT = {
    "zh-TW": {"title": "仿冒網域與郵件偽冒監控 (NSG-18.2)", "domain": "監控網域", "at": "最近一次監控",
              "candidates": "檢查之相似網域數", "lookalike": "相似網域", "records": "DNS 紀錄", "decision": "處置",
              "none": "無已註冊之相似網域", "mail": "郵件驗證紀錄", "never": "期間內尚未監控",
              "allowed": "本公司所有(允許清單)"},
    "en": {"title": "Phishing and impersonation watch (NSG-18.2)", "domain": "Watched domain", "at": "Newest watch",
           "candidates": "Lookalike names checked", "lookalike": "Lookalike", "records": "DNS records",
           "decision": "Decision", "none": "No registered lookalike", "mail": "Mail authentication records",
           "never": "not watched by the report's end", "allowed": "owned by the firm (allow-list)"},
}


def gather_watch(store: Store, config: Config, as_of: datetime,
                 assets: tuple[AssetReport, ...]) -> tuple[WatchEntry, ...]:
    from agent.scanning.watch import asset_of
    from state.history_reads import latest_runs

    names = {asset_of(d).name: d for d in config.watch.domains}
    if not names:
        return ()
    looks = latest_runs(store, "lookalike", names)
    mails = latest_runs(store, "mail", names)
    by_asset = {a.name: {(f.check_id, f.key): f for f in a.findings} for a in assets}
    out = []
    for name, domain in names.items():
        look = looks.get(name)
        if look is not None and look.finished_at > as_of:
            look = None  # newer than the report's moment: not evidence for this period
        mail = mails.get(name)
        findings = by_asset.get(name, {})
        rows = []
        for row in (look.observations.get("registered", []) if look else []):
            f = findings.get(("phishing.lookalike", str(row.get("domain"))))
            rows.append({**row, **({"finding": _decision(f)} if f is not None else {})})
        obs = mail.observations if mail is not None and mail.finished_at <= as_of else {}
        out.append(WatchEntry(domain, look.finished_at if look else None,
                              int(look.observations.get("candidates", 0)) if look else 0, tuple(rows),
                              {k: obs[k] for k in ("spf", "dmarc") if k in obs}))
    return tuple(out)


def _decision(f: FindingEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"id": f.id, "state": f.state.value, "severity": f.severity}
    if f.decision_reason:
        out |= {"reason": f.decision_reason, "by": f.decision_by}
    return out


def render_watch_html(entries: tuple[WatchEntry, ...], lang: str) -> str:
    if not entries:
        return ""
    t = _TEXT["zh-TW" if lang == "zh-TW" else "en"]
    parts = [f'<section class="watch"><h2>{t["title"]}</h2>']
    for e in entries:
        at = e.watched_at.isoformat(timespec="seconds") if e.watched_at else t["never"]
        parts.append(f"<h3>{t['domain']}: {escape(e.domain)}</h3><p>{t['at']}: {escape(at)}; "
                     f"{t['candidates']}: {e.candidates}</p>")
        if e.registered:
            parts.append(f"<table><tr><th>{t['lookalike']}</th><th>{t['records']}</th><th>{t['decision']}</th></tr>")
            for r in e.registered:
                name = escape(str(r.get("domain", "")))
                if r.get("unicode"):
                    name += f" ({escape(str(r['unicode']))})"
                records = "<br>".join(f"{escape(k)} {escape(', '.join(map(str, v)))}"
                                      for k, v in r.get("records", {}).items() if isinstance(v, list))
                decision = t["allowed"] if str(r.get("decision", "")).startswith("allowed") else escape(
                    str(r.get("decision", "")))
                f = r.get("finding")
                if f:
                    decision += f" — #{f['id']} {escape(f['state'])}"
                    if f.get("reason"):
                        decision += f": {escape(str(f['reason']))}"
                parts.append(f"<tr><td>{name}</td><td>{records}</td><td>{decision}</td></tr>")
            parts.append("</table>")
        elif e.watched_at:
            parts.append(f"<p>{t['none']}</p>")
        if e.mail:
            lines = "".join(f"<li>{escape(k.upper())}: {escape(v.get('verdict', ''))} — "
                            f"{escape('; '.join(v.get('records', [])) or '-')} ({escape(v.get('reason', ''))})</li>"
                            for k, v in e.mail.items())
            parts.append(f"<h4>{t['mail']}</h4><ul>{lines}</ul>")
    parts.append("</section>")
    return "".join(parts)
