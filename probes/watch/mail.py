"""A small, strict reader of SPF (RFC 7208) and DMARC (RFC 7489) TXT records. Pure.

Why not a library: checkdmarc (the well-known one) resolves names itself (includes, MX, the
organisational domain) with its own resolver, which would break the rule that every query goes
through posture's configured resolver, politely paced; pyspf evaluates a sender IP (it also
queries DNS) rather than judging a published policy. What posture judges is small: is there
exactly one record, how does SPF end (``all`` qualifier or ``redirect=``), and what DMARC
policy applies. Those are read here, strictly, with the record kept as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Spf:
    records: tuple[str, ...]  # every v=spf1 record published
    verdict: str  # "ok" | "missing" | "weak"
    reason: str
    all_term: str | None = None


@dataclass(frozen=True)
class Dmarc:
    records: tuple[str, ...]
    verdict: str  # "ok" | "missing" | "weak"
    reason: str
    tags: dict[str, str] = field(default_factory=dict)


def _is_spf(txt: str) -> bool:
    low = txt.strip().lower()
    return low == "v=spf1" or low.startswith("v=spf1 ")


def judge_spf(txts: tuple[str, ...]) -> Spf:
    records = tuple(t.strip() for t in txts if _is_spf(t))
    if not records:
        return Spf(records, "missing", "no SPF record (TXT v=spf1) at the domain: anyone may send mail as it")
    if len(records) > 1:
        return Spf(records, "missing",
                   f"{len(records)} SPF records published: receivers must treat that as an error (RFC 7208 4.5)")
    terms = records[0].split()[1:]
    all_terms = [t for t in terms if t.lower().lstrip("+-~?") == "all"]
    if all_terms:
        term = all_terms[-1].lower()
        qualifier = term[0] if term[0] in "+-~?" else "+"
        if qualifier in "-~":
            return Spf(records, "ok", f"ends with {term}", term)
        meaning = "passes every sender" if qualifier == "+" else "says nothing about other senders (neutral)"
        return Spf(records, "weak", f"ends with {term}: it {meaning}", term)
    if any(t.lower().startswith("redirect=") for t in terms):
        return Spf(records, "ok", "delegates its policy with redirect= (not followed: posture does not chase it)")
    return Spf(records, "weak", "no all mechanism and no redirect=: mail from other senders gets a neutral result")


def _tags(record: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            tags.setdefault(name.strip().lower(), value.strip())
    return tags


def judge_dmarc(txts: tuple[str, ...]) -> Dmarc:
    records = tuple(t.strip() for t in txts if t.strip().lower().replace(" ", "").startswith("v=dmarc1"))
    if not records:
        return Dmarc(records, "missing", "no DMARC record (TXT v=DMARC1 at _dmarc): receivers apply no policy")
    if len(records) > 1:
        why = f"{len(records)} DMARC records published: receivers ignore them all (RFC 7489 6.6.3)"
        return Dmarc(records, "missing", why)
    tags = _tags(records[0])
    if tags.get("v") != "DMARC1":
        return Dmarc(records, "missing", "the record does not start with v=DMARC1 exactly: receivers ignore it", tags)
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        if "p" in tags:
            return Dmarc(records, "missing", f"p={tags['p']} is not a DMARC policy: receivers ignore the record", tags)
        return Dmarc(records, "weak", "no p= tag: receivers apply p=none at best", tags)
    if policy == "none":
        why = "p=none: mail that fails DMARC is still delivered, so anyone can spoof the domain"
        return Dmarc(records, "weak", why, tags)
    pct = tags.get("pct", "100")
    if not pct.isdigit() or int(pct) < 100:
        return Dmarc(records, "weak", f"p={policy} applies to pct={pct} of failing mail only", tags)
    sub = tags.get("sp", policy).lower()
    if sub == "none":
        return Dmarc(records, "weak", f"p={policy} but sp=none: subdomains can be spoofed", tags)
    return Dmarc(records, "ok", f"p={policy}", tags)
