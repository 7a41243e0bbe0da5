"""Each probe's typed Settings and Observations: round trips, limits, and stored rows of any age.

``Observations.from_json(o.to_json()) == o`` and ``to_json(from_json(j)) == j`` for the
shapes the probes store (so old rows read and no migration is needed), and every
Settings type refuses what is out of its limits, which are the config's too.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from probes.edge import model as edge
from probes.eol import model as eol
from probes.http import model as http
from probes.leak import model as leak
from probes.ports import model as ports
from probes.social import model as social
from probes.tls import model as tls

TLS_ROW: dict[str, Any] = {
    "host": "www.b.test", "port": 443, "sni": "www.b.test", "host_unicode": "證券.台灣",
    "addresses": {
        "192.0.2.1": {"protocol": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256", "cipher_bits": 128,
                      "certificate": {"subject": "CN=www.b.test", "not_after": "2027-01-01T00:00:00+00:00",
                                      "fingerprint_sha256": "ab" * 32},
                      "chain": [{"fingerprint_sha256": "ab" * 32}], "trust": {"verified": True},
                      "hostname_match": True, "status": "ok"},
        "192.0.2.2": {"errors": {"certificate": {"kind": "connect", "message": "refused"}}, "status": "error"},
    },
    "skipped_addresses": {"2001:db8::1": "no IPv6 route"},
    "trust_store": {"sources": ["system"], "anchors": 140}, "expiry_warning_days": 30,
    "suites": {"192.0.2.1": {"protocols": {"TLSv1.3": True}}}, "hsts_max_age": 31536000,
    "grade": {"grade": "A+", "caps": []},
}
HTTP_ROW: dict[str, Any] = {
    "plain": {"www.b.test:80": {"192.0.2.1": {"walk": [{"url": "http://www.b.test/", "status": 301}],
                                              "state": "upgrades"}}},
    "https": {"www.b.test:443": {"192.0.2.1": {"hsts": {"present": True, "max_age": 31536000}}}},
    "http_port": 80,
    "banners": [{"product": "nginx", "version": "1.18.0", "source": "header", "where": "x", "raw": "nginx/1.18.0"}],
}
EDGE_ROW: dict[str, Any] = {
    "waf": {"vendor": "Cloudflare"}, "cdn": {"vendor": None}, "proxy": {"seen": False},
    "active": {"ran": True}, "signatures_version": "3", "cname_chain": ["x.cdn.test"],
    "declared": {"waf": "Cloudflare"}, "baseline": {"status": 200},
}
LEAK_ROW: dict[str, Any] = {
    "address": "192.0.2.1", "requests": [{"path": "/%po", "status": 400}], "request_count": 1,
    "parameters": [{"name": "id"}], "signatures_version": "7", "banners": ["Werkzeug/3.0"],
    "suppressed_by_normal_page": {"php.warning": ["https://b.test/"]},
}
PORTS_ROW: dict[str, Any] = {
    "port_list": "default", "ports_scanned": 40, "allowed_ports": [443], "allowed_from": "asset url",
    "skipped_addresses": {"::1": "no route"}, "nmap": {"path": "/usr/bin/nmap", "version": "7.93"},
    "addresses": {"192.0.2.1": {"open": [{"port": 22, "protocol": "tcp", "state": "open", "service": "ssh"}],
                                "service_detection": True, "commands": ["nmap ..."], "elapsed": 1.5},
                  "192.0.2.2": {"open": [], "service_detection": False, "commands": [], "elapsed": 0.1,
                                "scanned": False}},
    "elapsed": 2.25,
}
SOCIAL_ROW: dict[str, Any] = {
    "mode": "browser", "settings": {"max_pages": 30, "max_depth": 2, "browser": "auto", "page_timeout": 15.0},
    "data_version": "2", "mode_reason": "auto: chromium found", "crawl": {"pages": 2},
    "pages": ["https://b.test/", "https://b.test/a"], "links": [{"href": "https://line.me/x"}],
    "interstitials": [], "browser": {"pages_loaded": 2}, "static_vs_browser": [], "stage": "done", "seconds": 3.2,
}

ROWS: list[tuple[Any, dict[str, Any]]] = [
    (tls.Observations, TLS_ROW),
    (tls.Observations, {"skipped_addresses": {"::1": "no route"}}),  # a run that reached no address
    (http.Observations, HTTP_ROW),
    (http.Observations, {"plain": {}, "https": {}}),
    (edge.Observations, EDGE_ROW),
    (edge.Observations, {"cname_chain": [], "declared": {}}),  # failed before the baseline
    (leak.Observations, LEAK_ROW),
    (leak.Observations, {**{k: v for k, v in LEAK_ROW.items() if k not in ("banners", "suppressed_by_normal_page")}}),
    (ports.Observations, PORTS_ROW),
    (ports.Observations, {}),  # refused its settings before anything ran
    (social.Observations, SOCIAL_ROW),
]


@pytest.mark.parametrize(("kind", "row"), ROWS, ids=lambda v: getattr(v, "__module__", None) or "row")
def test_stored_rows_read_and_write_back_unchanged(kind: Any, row: dict[str, Any]) -> None:
    stored = json.loads(json.dumps(row))  # as the JSON column gives it back
    typed = kind.from_json(stored)
    assert typed.to_json() == row
    assert kind.from_json(typed.to_json()) == typed
    assert json.loads(json.dumps(typed.to_json())) == row  # serialisable as is


@pytest.mark.parametrize(("kind", "row"), ROWS[::2], ids=lambda v: getattr(v, "__module__", None) or "row")
def test_keys_a_type_does_not_model_are_kept(kind: Any, row: dict[str, Any]) -> None:
    newer = {**copy.deepcopy(row), "added_later": {"x": 1}}
    assert kind.from_json(newer).to_json() == newer


def test_typed_fields_are_what_the_other_layers_read() -> None:
    t = tls.Observations.from_json(TLS_ROW)
    assert t.grade == "A+" and t.hsts_max_age == 31536000 and t.port == 443
    ((address, cert),) = t.certificates()
    assert address == "192.0.2.1" and cert.subject == "CN=www.b.test" and cert.not_after is not None
    assert t.addresses is not None and t.addresses["192.0.2.2"].status == "error"
    p = ports.Observations.from_json(PORTS_ROW)
    assert p.open_ports() == {"192.0.2.1": [22]}  # the unscanned address says nothing
    assert http.Observations.from_json(HTTP_ROW).http_port == 80


def test_a_new_run_builds_its_observations_typed() -> None:
    built = tls.Observations(host="h", port=443, addresses={
        "192.0.2.1": tls.Address("ok", tls.Certificate.from_json({"subject": "CN=h", "not_after": "2027-01-01"}))},
        rest={"sni": "h"})
    again = tls.Observations.from_json(json.loads(json.dumps(built.to_json())))
    assert again == built
    assert leak.Observations(address="a", requests=({"p": 1},)).to_json()["request_count"] == 1


SETTINGS: list[tuple[Any, dict[str, Any], dict[str, Any]]] = [
    # (type, what a config section says, a value out of the probe's limits)
    (tls.Settings, {"expiry_warning_days": 14}, {"expiry_warning_days": 3651}),
    (http.Settings, {"http_port": 8080, "hsts_min_age": "365d"}, {"http_port": 0}),
    (http.Settings, {"hsts_min_age": 600}, {"hsts_min_age": "half a year"}),
    (social.Settings, {"max_pages": 5, "max_depth": 0, "browser": False, "page_timeout": 3.0},
     {"page_timeout": 0.5}),
    (social.Settings, {"browser": True, "chromium": "/usr/bin/chromium"}, {"max_pages": 1001}),
    (ports.Settings, {"ports": [22, 443], "max_rate": 50, "host_timeout": 10.0}, {"host_timeout": 3601}),
    (ports.Settings, {"nmap_path": "/usr/bin/nmap", "eol_data": "/var/lib/posture/eol.json"}, {"max_rate": 0}),
    (eol.Settings, {"data": "/var/lib/posture/eol.json"}, {"data": ""}),
    (edge.Settings, {}, {"anything": 1}),
    (leak.Settings, {}, {"anything": 1}),
]


@pytest.mark.parametrize(("kind", "raw", "bad"), SETTINGS, ids=lambda v: getattr(v, "__module__", None) or "raw")
def test_settings_round_trip_and_refuse_what_is_out_of_limits(kind: Any, raw: dict[str, Any],
                                                             bad: dict[str, Any]) -> None:
    s = kind.from_json(raw)
    assert kind.from_json(s.to_json()) == s
    assert kind.from_json(json.loads(json.dumps(s.to_json()))) == s
    with pytest.raises(ValueError):
        kind.from_json(bad)
    with pytest.raises(ValueError, match="unknown"):
        kind.from_json({**raw, "no_such_setting": 1})


def test_settings_are_frozen() -> None:
    s = tls.Settings()
    with pytest.raises(AttributeError):
        s.expiry_warning_days = 1  # type: ignore[misc]


def test_ports_observations_say_what_nmap_saw_everywhere() -> None:
    seen = ports.Observations.from_json(PORTS_ROW)
    assert not seen.scanned_everywhere  # 192.0.2.2 was not scanned: a missing port proves nothing
    only = {**PORTS_ROW, "addresses": {"192.0.2.1": PORTS_ROW["addresses"]["192.0.2.1"]}}
    assert ports.Observations.from_json(only).scanned_everywhere
    assert not ports.Observations.from_json({**PORTS_ROW, "addresses": {}}).scanned_everywhere
