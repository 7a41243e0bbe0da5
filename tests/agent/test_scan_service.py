"""The scan service: a typed request in, the runner's options out; bad input is one usage error."""

from __future__ import annotations

import dataclasses

import pytest

from agent.config import config_hash, parse_config
from agent.errors import UsageError
from agent.scanning.service import ScanRequest, scan_options, select_assets
from agent.session import Session
from state.records import Trigger


def session(text: str = "") -> Session:
    cfg = parse_config(text)
    return Session(cfg, config_hash(cfg), None, None)


def test_the_request_reaches_the_options() -> None:
    opts = scan_options(session(), ScanRequest(probes=("tls", "http", "tls"), resolver="127.0.0.1:5353",
                                               force_active=True, trigger=Trigger.SCHEDULED))
    assert opts.probes == ("tls", "http") and opts.resolver == "127.0.0.1:5353"
    assert opts.force_active is True and opts.trigger == Trigger.SCHEDULED
    default = scan_options(session(), ScanRequest())
    assert default.probes is None and default.force_active is False and default.trigger == Trigger.MANUAL
    with pytest.raises(dataclasses.FrozenInstanceError):
        ScanRequest().force_active = True  # type: ignore[misc]


@pytest.mark.parametrize(("request_", "message"), [
    (ScanRequest(probes=("tls", "nope")), "unknown probe 'nope'"),
    (ScanRequest(resolver="not an address"), "--resolver must be IP[:PORT]"),
    (ScanRequest(ca_bundle="/nonexistent/ca.pem"), "--ca-bundle"),
])
def test_bad_input_is_a_usage_error(request_: ScanRequest, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        scan_options(session(), request_)


def test_select_assets_prefers_the_configured_asset_and_scans_other_urls_ad_hoc() -> None:
    s = session('[[assets]]\nname = "www"\nurl = "https://www.broker.test/"\n')
    assert [a.name for a in select_assets(s, [])] == ["www"]
    chosen = select_assets(s, ["https://WWW.broker.test/", "https://other.test/", "https://other.test/"])
    assert [(a.name, a.configured) for a in chosen] == [("www", True), ("https://other.test/", False)]
    with pytest.raises(UsageError, match="no URL given and no assets configured"):
        select_assets(session(), [])
