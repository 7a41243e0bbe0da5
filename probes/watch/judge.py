"""From a domain's observation to two probe results (lookalikes, mail). Pure functions.

A lookalike that answers A, AAAA, MX or NS is registered and in use: ``phishing.lookalike``,
high when it has MX (it can send and receive mail as the firm), medium otherwise. An
allow-listed name (the firm owns it) is recorded with that decision and not reported. A lookup
that failed (timeout, SERVFAIL) proves nothing: the run is an error, so no finding is taken
for fixed on its word, but what it did find is still reported.
"""

from __future__ import annotations

import enum
from typing import Any

from probes.base import ErrorKind, Finding, ProbeError, ProbeResult, RunStatus, Severity
from probes.watch.mail import judge_dmarc, judge_spf
from probes.watch.model import LOOKALIKE_RUN, MAIL_RUN, DomainObservation, Settings


class WatchCheck(enum.StrEnum):
    """The check IDs the watch can raise (catalog entries under NSG-18.2)."""

    LOOKALIKE = "phishing.lookalike"
    SPF_MISSING = "email.spf.missing"
    SPF_WEAK = "email.spf.weak"
    DMARC_MISSING = "email.dmarc.missing"
    DMARC_WEAK = "email.dmarc.weak"


CHECKS: frozenset[str] = frozenset(c.value for c in WatchCheck)


def judge_lookalikes(obs: DomainObservation, settings: Settings) -> tuple[ProbeResult, frozenset[str]]:
    """The lookalike run, and every name seen registered (reported or allow-listed)."""
    findings: list[Finding] = []
    registered: list[dict[str, Any]] = []
    failed: list[str] = []
    present: set[str] = set()
    for cand, look in obs.lookups:
        if look.error and not look.resolves:
            failed.append(look.error)
            continue
        if not look.resolves:
            continue
        present.add(cand.name)
        row: dict[str, Any] = {"domain": cand.name, "fuzzer": cand.fuzzer, "records": look.to_json()}
        if cand.unicode:
            row["unicode"] = cand.unicode
        if cand.name in settings.allow:
            row["decision"] = "allowed: listed in [watch] allow (owned by the firm)"
            registered.append(row)
            continue
        has_mx = bool(look.records.get("MX"))
        row["decision"] = "reported (high: has MX)" if has_mx else "reported"
        registered.append(row)
        evidence: dict[str, Any] = {"domain": cand.name, "watched_domain": obs.domain, "fuzzer": cand.fuzzer,
                                    "records": look.to_json()}
        if cand.unicode:
            evidence["unicode"] = cand.unicode
        findings.append(Finding(
            WatchCheck.LOOKALIKE.value, cand.name, evidence,
            severity=Severity.HIGH if has_mx else None,
            severity_reason="it has MX records: it can send and receive mail as the firm" if has_mx else None,
        ))
    observations: dict[str, Any] = {
        "domain": obs.domain, "resolver": settings.resolver or "system", "candidates": obs.candidates,
        "looked_up": len(obs.lookups), "failed_lookups": len(failed), "registered": registered,
        "seconds": round(obs.seconds, 3),
    }
    if failed:
        observations["failures"] = failed[:20]
        error = ProbeError(LOOKALIKE_RUN, ErrorKind.DNS,
                           f"{len(failed)} of {len(obs.lookups)} lookups failed (first: {failed[0]})"[:300])
        result = ProbeResult(LOOKALIKE_RUN, RunStatus.ERROR, observations, tuple(findings), error)
    else:
        result = ProbeResult(LOOKALIKE_RUN, RunStatus.OK, observations, tuple(findings))
    return result, frozenset(present)


def judge_mail(obs: DomainObservation) -> ProbeResult:
    """SPF and DMARC of the firm's own domain, the records as evidence."""
    mail = obs.mail
    findings: list[Finding] = []
    observations: dict[str, Any] = {"domain": obs.domain}
    errors: list[str] = []
    if mail.apex_error:
        errors.append(mail.apex_error)
    else:
        spf = judge_spf(mail.apex_txt)
        observations["spf"] = {"records": list(spf.records), "verdict": spf.verdict, "reason": spf.reason}
        if spf.verdict != "ok":
            findings.append(Finding(WatchCheck(f"email.spf.{spf.verdict}").value, obs.domain,
                                    {"domain": obs.domain, "records": list(spf.records), "reason": spf.reason}))
    if mail.dmarc_error:
        errors.append(mail.dmarc_error)
    else:
        dmarc = judge_dmarc(mail.dmarc_txt)
        observations["dmarc"] = {"name": f"_dmarc.{obs.domain}", "records": list(dmarc.records),
                                 "verdict": dmarc.verdict, "reason": dmarc.reason}
        if dmarc.verdict != "ok":
            findings.append(Finding(WatchCheck(f"email.dmarc.{dmarc.verdict}").value, obs.domain,
                                    {"domain": obs.domain, "records": list(dmarc.records), "reason": dmarc.reason}))
    if errors:
        error = ProbeError(MAIL_RUN, ErrorKind.DNS, "; ".join(errors)[:300])
        return ProbeResult(MAIL_RUN, RunStatus.ERROR, observations, tuple(findings), error)
    return ProbeResult(MAIL_RUN, RunStatus.OK, observations, tuple(findings))
