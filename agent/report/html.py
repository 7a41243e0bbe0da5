"""The report as one self-contained HTML file that prints well to A4 PDF.

Built as plain strings. :data:`Html` marks text that is already safe markup, so
mypy catches a raw value passed where markup is expected: every value from the
database goes through :func:`_e` (``html.escape``) exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from html import escape
from typing import NewType
from zoneinfo import ZoneInfo

from agent.report import svg
from agent.report.labels import no_scans_note, text, value
from agent.report.model import (
    AssetReport,
    CadenceRecord,
    CertificateEntry,
    FindingEntry,
    Lang,
    ReportData,
    ScanEntry,
    SeriesPoint,
)
from agent.targets import display_name, display_url, hide_values, query_values
from state.delivery_views import ExternalScanInfo
from state.records import FindingState
from vocab import SEVERITY_ORDER

Html = NewType("Html", str)


class _Markup(str):
    """A header cell given as markup rather than a label key (a runtime-visible Html)."""


def _markup(raw: str) -> Html:
    return Html(_Markup(raw))

_CSS = """
@page { size: A4; margin: 14mm 12mm 16mm 12mm; }
* { box-sizing: border-box; }
html { font-family: "Noto Sans CJK TC", "Noto Sans TC", "PingFang TC", "Microsoft JhengHei", "Heiti TC",
       "Noto Sans CJK JP", sans-serif; font-size: 10pt; color: #111827; background: #fff; }
body { margin: 0 auto; max-width: 200mm; padding: 10mm 6mm; }
h1 { font-size: 18pt; margin: 0 0 2mm; }
h2 { font-size: 14pt; margin: 0 0 3mm; border-bottom: 2px solid #1f2937; padding-bottom: 1mm; }
h3 { font-size: 11pt; margin: 5mm 0 2mm; }
p.sub { margin: 0 0 4mm; color: #374151; }
table { border-collapse: collapse; width: 100%; margin: 0 0 3mm; }
th, td { border: 1px solid #d1d5db; padding: 1.2mm 1.6mm; text-align: left; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
table.meta th { width: 34%; }
.small { font-size: 8pt; color: #4b5563; }
.key { font-family: "DejaVu Sans Mono", monospace; font-size: 7.5pt; word-break: break-all; color: #4b5563; }
.sev { display: inline-block; min-width: 3.2em; padding: 0 1.2mm; border-radius: 1mm; color: #fff;
       text-align: center; font-size: 8.5pt; print-color-adjust: exact; -webkit-print-color-adjust: exact; }
.sev-critical { background: #7f1d1d; } .sev-high { background: #dc2626; } .sev-medium { background: #b45309; }
.sev-low { background: #2563eb; } .sev-info { background: #6b7280; }
.bad { color: #b91c1c; font-weight: 600; } .warn { color: #b45309; font-weight: 600; } .good { color: #15803d; }
svg.chart { width: 100%; height: auto; display: block; margin: 1mm 0 3mm; break-inside: avoid; }
section.asset { break-before: page; }
.chart-box { break-inside: avoid; }
footer { margin-top: 6mm; font-size: 8pt; color: #6b7280; }
tr.finding td { border-bottom: none; }
tr.detail td { border-top: none; font-size: 8.5pt; padding-top: 0; }
tr.detail div { margin: 0.8mm 0; }
table.ev { margin: 0.5mm 0 1mm; } table.ev th { width: 30%; font-weight: 400; background: #f9fafb; }
td.ev { word-break: break-word; white-space: pre-wrap; font-size: 8pt; }
@media print {
  body { padding: 0; max-width: none; }
  a { color: inherit; text-decoration: none; }
  h2, h3 { break-after: avoid; }
}
"""


def _e(raw: object) -> Html:
    return Html(escape(str(raw), quote=True))


def _join(parts: Iterable[Html], sep: str = "") -> Html:
    return Html(sep.join(parts))


class _Page:
    def __init__(self, data: ReportData, lang: Lang) -> None:
        self.data, self.lang = data, lang
        self.zone = ZoneInfo(data.period.timezone)

    def t(self, key: str) -> Html:
        return _e(text(self.lang, key))

    def v(self, raw: str) -> Html:
        return _e(value(self.lang, raw))

    def when(self, at: datetime | None, *, date_only: bool = False) -> Html:
        if at is None:
            return Html("—")
        local = at.astimezone(self.zone)
        shown = local.strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M")
        return Html(f'<time datetime="{_e(local.isoformat())}">{_e(shown)}</time>')

    def sev(self, severity: str) -> Html:
        return Html(f'<span class="sev sev-{_e(severity)}">{self.v(severity)}</span>')

    def table(self, headers: Sequence[tuple[str | Html, bool]], rows: Iterable[Sequence[Html]],
              css: str = "") -> Html:
        """``headers``: (label key or markup, numeric) pairs."""
        def cell(tag: str, numeric: bool, content: str) -> str:
            return f'<{tag} class="n">{content}</{tag}>' if numeric else f"<{tag}>{content}</{tag}>"

        head = "".join(cell("th", n, self._head(k)) for k, n in headers)
        body = "".join(
            "<tr>" + "".join(cell("td", n, c) for c, (_, n) in zip(row, headers, strict=True)) + "</tr>"
            for row in rows
        )
        klass = f' class="{_e(css)}"' if css else ""
        return Html(f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def _head(self, label: str | Html) -> Html:
        return Html(label) if isinstance(label, _Markup) else self.t(label)

    def severity_labels(self) -> dict[str, str]:
        return {s: value(self.lang, s) for s in SEVERITY_ORDER}

    # -- the first page ------------------------------------------------------------------

    def cover(self) -> Html:
        d, p = self.data, self.data.period
        last_day = (p.until - timedelta(microseconds=1)).astimezone(self.zone).date()  # --to is inclusive
        period = Html(f"{self.when(p.since, date_only=True)} – {_e(last_day.isoformat())}"
                      + (self.t("declaration") if p.declaration else ""))
        meta = [
            (self.t("period"), period),
            (self.t("as_of"), self.when(d.as_of)),
            (self.t("generated"), self.when(d.generated_at)),
            (self.t("timezone"), _e(p.timezone)),
            (self.t("versions"), _e(f"posture {d.posture_version} · catalog {d.catalog_version}")),
            (self.t("policy"), self.policy()),
            (self.t("cadence_policy"), _e(text(self.lang, "cadence_rule").format(
                days=d.policy.cadence_days, warn=d.policy.cadence_warn_days))),
        ]
        rows = _join(Html(f"<tr><th>{k}</th><td>{v}</td></tr>") for k, v in meta)
        return Html(f"<header><h1>{self.t('title')}</h1><p class=\"sub\">{self.t('subtitle')}</p>"
                    f'<table class="meta"><tbody>{rows}</tbody></table></header>')

    def policy(self) -> Html:
        pol = self.data.policy
        days = ", ".join(
            f"{value(self.lang, s)} {n} {text(self.lang, 'days')}" if n is not None
            else f"{value(self.lang, s)} {text(self.lang, 'no_deadline')}"
            for s, n in ((s, pol.deadline_days.get(s)) for s in SEVERITY_ORDER)
        )
        kinds = "; ".join(
            f"{value(self.lang, kind)}: " + ", ".join(f"{value(self.lang, s)} {n}" for s, n in sorted(over.items()))
            for kind, over in sorted(pol.per_kind.items()) if over
        )
        rule = text(self.lang, "reopened_keeps" if pol.reopened_keeps_deadline else "reopened_restarts")
        return Html(_e(days) + (Html("<br>" + _e(kinds)) if kinds else "") + Html(f"<br><span class=\"small\">"
                                                                                   f"{_e(rule)}</span>"))

    def summary(self) -> Html:
        d = self.data
        rows = []
        for a in d.assets:
            opened = a.open_by_severity()
            rows.append([
                Html(f'<a href="#asset-{_e(display_name(a.name))}">{_e(display_name(a.name))}</a>'), self.v(a.kind),
                _e(len(a.scans)), _e(len(a.cadence.complete_scans)), _e(a.latest_grade or "—"),
                *(_e(opened.get(s, 0)) for s in SEVERITY_ORDER[:4]),
                Html(f'<span class="bad">{a.overdue}</span>' if a.overdue else "0"),
                self.cadence_state(a.cadence),
            ])
        totals = d.open_by_severity()
        rows.append([
            Html(f"<strong>{self.t('total')}</strong>"), Html(""), _e(sum(len(a.scans) for a in d.assets)),
            _e(sum(len(a.cadence.complete_scans) for a in d.assets)), Html(""),
            *(_e(totals.get(s, 0)) for s in SEVERITY_ORDER[:4]), _e(sum(a.overdue for a in d.assets)), Html(""),
        ])
        headers: list[tuple[str | Html, bool]] = [
            ("asset", False), ("kind", False), ("scans", True), ("complete_scans", True), ("grade", False),
            *((_markup(f"{self.t('open')}<br>{self.sev(s)}"), True) for s in SEVERITY_ORDER[:4]),
            ("overdue", True), ("cadence", False),
        ]
        table = self.table(headers, rows)
        note = no_scans_note(d, self.lang)
        if note is not None:
            table = Html(f'<p class="bad">{_e(note)}</p>{table}')
        charts = self.charts(d.series, d.certificates(), [t for a in d.assets for t in _scan_times(a)])
        return Html(f"<section class=\"summary\"><h2>{self.t('summary')}</h2>{table}{charts}"
                    f"{self.clause_legend()}</section>")

    def clause_legend(self) -> Html:
        clauses = self.data.clauses()
        if not clauses:
            return Html("")
        rows = [[_e(c.label), _e(c.source), _e(c.zh if self.lang is Lang.ZH_TW else c.en)] for c in clauses]
        table = self.table([("label", False), ("source", False), ("requirement", False)], rows)
        return Html(f"<h3>{self.t('clauses')}</h3>{table}")

    def charts(self, points: Sequence[SeriesPoint], certs: Sequence[tuple[str, CertificateEntry]],
               scans: Sequence[datetime] = ()) -> Html:
        tz = self.data.period.timezone
        open_chart = svg.open_findings_chart(points, tz, self.severity_labels(),
                                             title=text(self.lang, "open_chart"), scans=scans)
        days = svg.scan_days(scans, tz)
        if len(days) == 1:
            open_chart = (f'<p class="small">{_e(text(self.lang, "single_day").format(day=next(iter(days))))}</p>'
                          + open_chart)
        warn = self.data.policy.expiry_warning_days
        cert_chart = svg.certificate_chart(certs, warn_days=warn, title=text(self.lang, "cert_chart"),
                                           expired_label=text(self.lang, "expired"), days_label=text(self.lang, "days"))
        out = f"<div class=\"chart-box\"><h3>{self.t('open_chart')}</h3>{open_chart}</div>"
        out += f"<div class=\"chart-box\"><h3>{self.t('cert_chart')}</h3>"
        out += cert_chart if cert_chart else f"<p class=\"small\">{self.t('no_certificates')}</p>"
        return Html(out + "</div>")

    def cadence_state(self, record: CadenceRecord) -> Html:
        css = {"ok": "good", "never_scanned": "warn", "warning": "warn", "overdue": "bad"}[record.state.value]
        return Html(f'<span class="{css}">{self.v(record.state.value)}</span>')

    # -- one page (or more) per asset ------------------------------------------------------

    def asset(self, a: AssetReport) -> Html:
        added = self.when(a.added_at, date_only=True) if a.added_at else self.t("never_scanned")
        meta = _join(Html(f"<tr><th>{k}</th><td>{v}</td></tr>") for k, v in (
            (self.t("url"), _e(display_url(a.url))), (self.t("kind"), self.v(a.kind)), (self.t("added"), added),
            (self.t("grade"), _e(a.latest_grade or "—")),
        ))
        certs = [(display_name(a.name), c) for c in sorted(a.certificates, key=lambda c: c.not_after)]
        return Html(
            f'<section class="asset" id="asset-{_e(display_name(a.name))}"><h2>{self.t("asset")}: '
            f'{_e(display_name(a.name))}</h2>'
            f'<table class="meta"><tbody>{meta}</tbody></table>'
            f"<h3>{self.t('cadence_record')}</h3>{self.cadence(a.cadence)}"
            f"{self.charts(a.series, certs, _scan_times(a))}"
            f"{self.declared(a)}<h3>{self.t('finding_list')}</h3>{self.findings(a.findings, query_values(a.url))}"
            f"<h3>{self.t('scan_list')}</h3>{self.scans(a.scans)}{self.external(a.external_scans)}</section>"
        )

    def external(self, scans: Sequence[ExternalScanInfo]) -> Html:
        if not scans:
            return Html("")
        headers: list[tuple[str | Html, bool]] = [
            ("id", True), ("performed", False), ("performed_by", False), ("evidence", False), ("note", False)]
        table = self.table(headers, ([
            _e(x.id), _e(x.performed_entered) if x.performed_entered else self.when(x.performed_at),
            _e(x.performed_by),
            Html(f'{_e(x.evidence_name)} ({x.evidence_size:,} B)<br><span class="key">sha256 '
                 f"{_e(x.evidence_sha256)}</span>"),
            _e(x.note or ""),
        ] for x in scans))
        return Html(f"<h3>{self.t('external_list')}</h3>{table}")

    def cadence(self, r: CadenceRecord) -> Html:
        gaps = _join((Html(f"{self.when(g.start, date_only=True)} – {self.when(g.end, date_only=True)}: "
                           f"<span class=\"bad\">{g.days} {self.t('days')}</span>"
                           + (self.t("ongoing") if g.ongoing else ""))
                      for g in r.gaps), "<br>") or self.t("no_gaps")
        rows = (
            (self.t("complete_scans"), _e(len(r.complete_scans))),
            (self.t("previous_complete"), self.when(r.previous_complete) if r.previous_complete else self.t("never")),
            (self.t("last_complete"), self.when(r.last_complete) if r.last_complete else self.t("never")),
            (self.t("cadence"), Html(f"{self.cadence_state(r)} · {self.t('due')} {self.when(r.due, date_only=True)}"
                                     f" ({self.t('days_left')} {r.days_left})")),
            (self.t("gaps"), gaps),
        )
        body = _join(Html(f"<tr><th>{k}</th><td>{v}</td></tr>") for k, v in rows)
        return Html(f'<table class="meta"><tbody>{body}</tbody></table>')

    def findings(self, findings: Sequence[FindingEntry], secrets: frozenset[str] = frozenset()) -> Html:
        if not findings:
            return Html(f"<p>{self.t('no_findings')}</p>")
        headers: list[tuple[str | Html, bool]] = [
            ("id", True), ("check", False), ("severity", False), ("clause", False), ("first_seen", False),
            ("deadline", False), ("state", False)]
        head = "".join(f'<th class="n">{self._head(k)}</th>' if n else f"<th>{self._head(k)}</th>"
                       for k, n in headers)
        body = []
        for f in findings:
            cells = [
                Html(f'<td class="n">{_e(f.id)}</td>'),
                Html(f"<td>{_e(f.title(self.lang))}<br><span class=\"small\">{_e(f.check_id)}</span>"
                     f"<br><span class=\"key\">{_e(f.key)}</span></td>"),
                Html(f"<td>{self.sev(f.severity)}</td>"),
                Html("<td>" + (_join((Html(f"{_e(c.label)}<br><span class=\"small\">{_e(c.source)}</span>")
                                      for c in f.clauses), "<br>") or "—") + "</td>"),
                Html(f"<td>{self.when(f.first_seen, date_only=True)}</td>"),
                Html("<td>" + (f'<span class="bad">{self.when(f.deadline, date_only=True)}</span>' if f.overdue
                               else self.when(f.deadline, date_only=True)) + "</td>"),
                Html(f"<td>{self.state(f)}</td>"),
            ]
            body.append(f'<tr class="finding" id="finding-{_e(f.id)}">{"".join(cells)}</tr>')
            body.append(f'<tr class="detail"><td></td><td colspan="6">{self.detail(f, secrets)}</td></tr>')
        return Html(f'<table class="findings"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')

    def detail(self, f: FindingEntry, secrets: frozenset[str] = frozenset()) -> Html:
        """Under each finding: the catalog's advice, what was observed (the asset URL's query values
        masked, ``secrets``), and every decision taken."""
        from agent.report.details import evidence_lines, evidence_of

        advice = f.remediation(self.lang)
        parts = [f'<div class="advice"><strong>{self.t("remediation")}</strong>: {_e(advice or "—")}</div>']
        ev = f.evidence
        if ev is not None and secrets:  # masked before long values are cut, which could cut a secret in two
            ev = evidence_of(ev.scan_id, ev.seen_at, hide_values(dict(ev.fields), secrets))
        lines = evidence_lines(ev)
        if f.evidence is not None and lines:
            source = _e(text(self.lang, "evidence_from").format(
                scan=f.evidence.scan_id, at=f.evidence.seen_at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")))
            rows = "".join(f'<tr><th class="key">{_e(k)}</th><td class="ev">{_e(v)}</td></tr>' for k, v in lines)
            parts.append(f'<div class="evidence"><strong>{self.t("observed_evidence")}</strong> '
                         f'<span class="small">{source}</span><table class="ev"><tbody>{rows}</tbody></table></div>')
        else:
            parts.append(f'<div class="evidence"><strong>{self.t("observed_evidence")}</strong>: '
                         f'<span class="small">{self.t("no_evidence")}</span></div>')
        parts.append(f'<div class="history"><strong>{self.t("decision_history")}</strong>'
                     + (self.history(f) if f.history else f': <span class="small">{self.t("no_decisions")}</span>')
                     + "</div>")
        return Html("".join(parts))

    def history(self, f: FindingEntry) -> Html:
        rows = []
        for h in f.history:
            kind = self.t("reopened_by_person") if h.kind == "reopened" else self.v(h.kind)
            until = ""
            if h.until_entered:
                until = f"{self.t('until')} {_e(h.until_entered)}"  # exactly as the approver typed it
            elif h.until is not None:
                until = f"{self.t('until')} {self.when(h.until - timedelta(microseconds=1), date_only=True)}"
            if h.config_change:
                until = f"{self.t('config')} {_e(h.config_change[0] or '?')} → {_e(h.config_change[1] or '?')}"
            rows.append([self.when(h.at), Html(kind), _e(h.by or "—"), _e(h.reason or "—"), Html(until or "—")])
        return self.table([("decided_at", False), ("decision", False), ("decided_by", False), ("reason", False),
                           ("until", False)], rows)

    def declared(self, a: AssetReport) -> Html:
        if not a.declared:
            return Html("")
        rows = [[self.v(c.key), _e(c.text),
                 (Html(f"{_e(c.observed)}<br><span class=\"small\">{self.t('scan_id')} {_e(c.scan_id)}</span>")
                  if c.observed is not None else Html(f'<span class="warn">{self.t("no_edge_run")}</span>'))]
                for c in a.declared]
        table = self.table([("control", False), ("declared", False), ("observed", False)], rows)
        return Html(f"<h3>{self.t('declared_controls')}</h3>{table}")

    def state(self, f: FindingEntry) -> Html:
        out = self.v(f.state.value)
        if f.state is FindingState.RESOLVED_BY_CONFIG:
            before, after = f.config_change or (None, None)
            out = Html(f"{out} {self.when(f.fixed_at, date_only=True)}<br><span class=\"small\">"
                       f"{self.t('config')} {_e(before or '?')} → {_e(after or '?')}</span>")
        if f.state is FindingState.FIXED:
            out = Html(f"{out} {self.when(f.fixed_at, date_only=True)}"
                       + (f'<br><span class="warn">{self.t("fixed_late")}</span>' if f.fixed_late else ""))
        elif f.overdue:
            out = Html(f'{out}<br><span class="bad">{self.t("overdue")}</span>')
        if f.state is FindingState.ACCEPTED and f.accepted_until:
            shown = _e(f.accepted_until_entered) if f.accepted_until_entered else self.when(
                f.accepted_until - timedelta(microseconds=1), date_only=True)  # the last day covered
            out = Html(f"{out} {self.t('until')} {shown}")
        if f.decision_reason:
            by = f" ({text(self.lang, 'by')} {f.decision_by})" if f.decision_by else ""
            out = Html(f'{out}<br><span class="small">{_e(f.decision_reason + by)}</span>')
        if f.reopened_count:
            out = Html(f'{out}<br><span class="small">{self.v("reopened")} ×{f.reopened_count}</span>')
        return out

    def scans(self, scans: Sequence[ScanEntry]) -> Html:
        if not scans:
            return Html(f"<p class=\"bad\">{self.t('no_scans')}</p>")
        headers = [("scan_id", True), ("started", False), ("status", False), ("trigger", False), ("scope", False),
                   ("grade", False), ("findings", True), ("counts", False), ("probes", False), ("errors", False)]
        return self.table(headers, ([
            _e(s.id), self.when(s.started_at), self.v(s.status.value), self.v(s.trigger.value),
            self.t("full_scope" if s.full else "narrowed"), _e(s.grade or "—"), _e(s.findings),
            self.t("yes" if s.counts_for_cadence else "no"),
            _join((Html(f'<span class="small">{_e(p)} {self.v(o)}' + (f" ({_e(r)})" if r and o != "ran" else "")
                        + "</span>") for p, o, r in s.steps), "<br>"),
            _join((Html(f'<span class="small">{_e(e.probe)}: {_e(e.error)}</span>') for e in s.errors), "<br>")
            or (Html(f'<span class="small">{_e(s.error)}</span>') if s.error else Html("")),
        ] for s in scans), css="scans")


def _scan_times(a: AssetReport) -> list[datetime]:
    """When the asset's scans in the period ended (its findings are recorded then), third-party ones included."""
    return [s.finished_at or s.started_at for s in a.scans] + [x.performed_at for x in a.external_scans]


def _calendar(data: ReportData, lang: Lang) -> Html:
    """The compliance calendar on the period's last day (issue 19), when the config has a [firm]."""
    if not data.duties:
        return Html("")
    from agent.notify.duty_alerts import calendar_heading, calendar_lines

    lines = calendar_lines(data.duties, lang.value)
    items = _join(Html(f"<li>{_e(x)}</li>") for x in lines)
    return Html(f'<section class="calendar"><h2>{_e(calendar_heading(lang.value, len(lines)))}</h2>'
                f"<ul>{items}</ul></section>")


def render_html(data: ReportData, lang: Lang) -> str:
    page = _Page(data, lang)
    from agent.report.watch import render_watch_html

    watch = Html(render_watch_html(data.watch, lang.value))
    body = _join([page.cover(), page.summary(), _calendar(data, lang), watch, *(page.asset(a) for a in data.assets)])
    title = f"{text(lang, 'title')} {data.period.since.astimezone(page.zone).date().isoformat()}"
    return (
        f'<!DOCTYPE html>\n<html lang="{_e(lang.value)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}<footer>{page.t('page_note')}</footer></body></html>\n"
    )
