"""Pure parts of the watch: candidates, the SPF/DMARC reader, the lookalike verdicts."""

from __future__ import annotations

import pytest

from probes.base import RunStatus, Severity
from probes.watch.candidates import candidates
from probes.watch.judge import judge_lookalikes, judge_mail
from probes.watch.mail import judge_dmarc, judge_spf
from probes.watch.model import Candidate, DomainObservation, Lookup, MailRecords, Settings


def test_candidates_cover_every_permutation_kind_in_one_normal_form() -> None:
    s = Settings(domains=("broker.com.tw",))
    by_name = {c.name: c for c in candidates("BROKER.com.tw.", s)}
    for name in ("broker.com", "broker.net", "broker.tw", "broker.xn--kpry57d",  # TLD swaps (.台灣)
                 "brokr.com.tw", "borker.com.tw", "br0ker.com.tw", "brok-er.com.tw",  # omission, swap, glyph, hyphen
                 "broker-login.com.tw", "securebroker.com.tw", "brokerapp.com.tw"):  # added words
        assert name in by_name, name
    idn = by_name["xn--brker-kye.com.tw"]  # Cyrillic о
    assert idn.fuzzer == "idn-homoglyph" and idn.unicode == "brоker.com.tw"
    assert "broker.com.tw" not in by_name
    assert all(c.name == c.name.lower() and c.name.isascii() and not c.name.endswith(".") for c in by_name.values())


@pytest.mark.parametrize(("txts", "verdict", "term"), [
    ((), "missing", None),
    (("google-site-verification=abc",), "missing", None),
    (("v=spf1 -all", "v=spf1 ~all"), "missing", None),  # two records: permerror
    (("v=spf1 ip4:192.0.2.1 -all",), "ok", "-all"),
    (("v=spf1 include:_spf.example ~all",), "ok", "~all"),
    (("v=spf1 redirect=_spf.example",), "ok", None),
    (("v=spf1 +all",), "weak", "+all"),
    (("v=spf1 a mx all",), "weak", "all"),
    (("v=spf1 ?all",), "weak", "?all"),
    (("v=spf1 ip4:192.0.2.1",), "weak", None),
    (("v=spf10 -all",), "missing", None),  # not an SPF record
])
def test_spf(txts: tuple[str, ...], verdict: str, term: str | None) -> None:
    got = judge_spf(txts)
    assert (got.verdict, got.all_term) == (verdict, term), got.reason


@pytest.mark.parametrize(("txts", "verdict"), [
    ((), "missing"),
    (("v=DMARC1; p=reject", "v=DMARC1; p=none"), "missing"),
    (("v=dmarc1; p=reject",), "missing"),  # v must be DMARC1 exactly
    (("v=DMARC1; p=bogus",), "missing"),
    (("v=DMARC1; rua=mailto:a@b",), "weak"),
    (("v=DMARC1; p=none; rua=mailto:a@b",), "weak"),
    (("v=DMARC1; p=quarantine; pct=50",), "weak"),
    (("v=DMARC1; p=reject; sp=none",), "weak"),
    (("v=DMARC1; p=quarantine",), "ok"),
    (("v=DMARC1;p=reject;pct=100",), "ok"),
])
def test_dmarc(txts: tuple[str, ...], verdict: str) -> None:
    assert judge_dmarc(txts).verdict == verdict


def _obs(*lookups: tuple[str, Lookup], mail: MailRecords | None = None) -> DomainObservation:
    return DomainObservation("broker.com.tw", len(lookups), tuple((Candidate(n, "test"), lk) for n, lk in lookups),
                             mail or MailRecords("broker.com.tw", ("v=spf1 -all",), ("v=DMARC1; p=reject",)))


def test_lookalike_verdicts() -> None:
    s = Settings(domains=("broker.com.tw",), allow=frozenset({"broker.tw"}))
    obs = _obs(("broker.com", Lookup("broker.com", {"A": ("192.0.2.1",), "AAAA": ()})),
               ("broker-login.com.tw", Lookup("broker-login.com.tw", {"A": (), "MX": ("10 mx.evil",)})),
               ("broker.tw", Lookup("broker.tw", {"A": ("192.0.2.2",)})),
               ("brokr.com.tw", Lookup("brokr.com.tw", nxdomain=True)))
    result, present = judge_lookalikes(obs, s)
    assert result.status is RunStatus.OK
    sev = {f.key: f.severity for f in result.findings}
    assert sev == {"broker.com": None, "broker-login.com.tw": Severity.HIGH}  # None: the catalog's medium
    assert present == {"broker.com", "broker-login.com.tw", "broker.tw"}


def test_a_failed_lookup_makes_the_run_an_error_but_keeps_what_was_found() -> None:
    s = Settings(domains=("broker.com.tw",))
    obs = _obs(("broker.com", Lookup("broker.com", {"A": ("192.0.2.1",)})),
               ("brokr.com.tw", Lookup("brokr.com.tw", error="A brokr.com.tw: timed out after 3s")))
    result, _ = judge_lookalikes(obs, s)
    assert result.status is RunStatus.ERROR and result.error is not None and "1 of 2" in result.error.message
    assert [f.key for f in result.findings] == ["broker.com"]


def test_mail_lookup_errors_prove_nothing() -> None:
    obs = _obs(mail=MailRecords("broker.com.tw", apex_error="TXT broker.com.tw: timed out",
                                dmarc_txt=("v=DMARC1; p=none",)))
    result = judge_mail(obs)
    assert result.status is RunStatus.ERROR
    assert [f.check_id for f in result.findings] == ["email.dmarc.weak"]
