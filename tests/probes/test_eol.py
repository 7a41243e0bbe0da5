"""End-of-life matching, verdicts at the boundary, findings, the data file and its refresh."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from probes.catalog import load_catalog
from probes.eol.banners import Banner, BannerSource
from probes.eol.check import (
    CHECK_ID,
    Cycle,
    EolData,
    Product,
    Versioning,
    default_eol_data,
    eol_findings,
    judge,
    load_eol_data,
    match_cycle,
    parse_eol_data,
    refresh_from_export,
    verdict,
    version_components,
    write_eol_data,
)
from vocab import DataFileError

DATA = default_eol_data()
TODAY = dt.date(2026, 11, 21)


@pytest.mark.parametrize(
    ("text", "versioning", "expected"),
    [
        ("1.0.2k-fips", Versioning.NUMERIC, (1, 0, 2)),
        ("7.4p1", Versioning.NUMERIC, (7, 4)),
        ("v18.19.0", Versioning.NUMERIC, (18, 19, 0)),
        ("9.2p1 Debian 2+deb12u3", Versioning.NUMERIC, (9, 2)),
        ("2019.78", Versioning.NUMERIC, (2019, 78)),
        ("latest", Versioning.NUMERIC, ()),
        ("", Versioning.NUMERIC, ()),
        ("2012 R2", Versioning.NAME, ("2012", "r2")),
        ("2008-r2-sp1", Versioning.NAME, ("2008", "r2", "sp1")),
    ],
)
def test_version_components(text: str, versioning: Versioning, expected: tuple[Any, ...]) -> None:
    assert version_components(text, versioning) == expected


@pytest.mark.parametrize(
    ("product", "version", "cycle"),
    [
        ("openssl", "1.1.1w", "1.1.1"),
        ("openssl", "1.0.2k-fips", "1.0.2"),
        ("openssl", "3.0.13", "3.0"),
        ("openssl", "3.6.0", None),  # a cycle the data does not have
        ("nginx", "1.20.1", "1.20"),  # not 1.2
        ("nginx", "1.2.9", "1.2"),
        ("tomcat", "9.0.80", "9"),
        ("tomcat", "8.5.100", "8.5"),
        ("tomcat", "8.0.53", "8.0"),
        ("tomcat", "10.1.20", "10.1"),
        ("openssh", "7.4", "7"),
        ("openssh", "9.2p1 Debian 2+deb12u10", "9.2"),
        ("openssh", "8.1p1", None),  # no long-term distribution shipped it
        ("iis", "8.5", "8.5"),
        ("nodejs", "v0.10.48", "0.10"),
        ("python", "3.11.7", "3.11"),
        ("jquery", "1.12.4", "1"),
        ("windows-server", "2012 R2", "2012-r2"),
        ("windows-server", "2008 R2 SP1", "2008-r2"),
        ("windows-server", "2012", "2012"),
        ("openssh", "6.6.1p1 - 7.2", None),  # nmap range across cycles: cannot tell
        ("openssh", "7.2 - 7.4", "7"),  # a range inside one cycle
        ("php", "", None),
    ],
)
def test_match_cycle(product: str, version: str, cycle: str | None) -> None:
    found = match_cycle(DATA.products[product], version)
    assert (found.cycle if found else None) == cycle


def _product(eol: dt.date | bool) -> Product:
    return Product("demo", "Demo", ("demo",), Versioning.NUMERIC, "test", (Cycle("1.2", eol),))


@pytest.mark.parametrize(
    ("eol", "today", "is_eol", "days_past"),
    [
        (dt.date(2025, 4, 23), dt.date(2025, 4, 22), False, None),  # the day before
        (dt.date(2025, 4, 23), dt.date(2025, 4, 23), True, 0),  # the end date itself
        (dt.date(2025, 4, 23), dt.date(2025, 4, 24), True, 1),
        (dt.date(2024, 2, 29), dt.date(2025, 3, 1), True, 366),
        (True, dt.date(2000, 1, 1), True, None),  # ended, no date given
        (False, dt.date(2099, 1, 1), False, None),  # still supported
    ],
)
def test_verdict_at_the_boundary(eol: dt.date | bool, today: dt.date, is_eol: bool, days_past: int | None) -> None:
    v = verdict(_product(eol), "1.2.3", today)
    assert v is not None
    assert (v.is_eol, v.days_past) == (is_eol, days_past)
    assert v.key == "demo:1.2"


def _is_eol(data: EolData, name: str, version: str, today: dt.date) -> bool:
    v = judge(data, name, version, today)
    assert v is not None, f"no verdict for {name} {version}"
    return v.is_eol


def test_nginx_boundary_in_the_shipped_data() -> None:
    assert not _is_eol(DATA, "nginx", "1.26.3", dt.date(2025, 4, 22))
    assert _is_eol(DATA, "nginx", "1.26.3", dt.date(2025, 4, 23))  # endoflife.date: 1.26 ended 2025-04-23


@pytest.mark.parametrize(
    ("name", "version", "key", "is_eol"),
    [
        ("OpenSSH", "7.4", "openssh:7", True),
        ("OpenSSH", "9.2p1", "openssh:9.2", False),
        ("cpe:/a:openbsd:openssh", "7.4", "openssh:7", True),
        ("Apache", "2.2.15", "apache-http-server:2.2", True),
        ("Apache httpd", "2.4.6", "apache-http-server:2.4", False),
        ("Microsoft-IIS", "8.5", "iis:8.5", True),
        ("Microsoft IIS httpd", "10.0", "iis:10.0", False),
        ("Apache Tomcat", "8.5.100", "tomcat:8.5", True),
        ("PHP", "8.3.1", "php:8.3", False),
        ("PHP", "8.1.2", "php:8.1", True),
        ("CPython", "3.8.10", "python:3.8", True),
        ("jQuery", "1.12.4", "jquery:1", True),
        ("jQuery", "3.7.1", "jquery:3", False),
        ("OpenSSL", "3.0.13", "openssl:3.0", True),  # ended 2026-09-07
        ("OpenSSL", "3.5.1", "openssl:3.5", False),
        ("Node.js", "16.20.2", "nodejs:16", True),
    ],
)
def test_judge_by_banner_name(name: str, version: str, key: str, is_eol: bool) -> None:
    v = judge(DATA, name, version, TODAY)
    assert v is not None
    assert (v.key, v.is_eol) == (key, is_eol)


@pytest.mark.parametrize(("name", "version"), [("BaseHTTPServer", "0.6"), ("OpenSSH_for_Windows", "8.1"),
                                                ("OpenSSH", ""), ("OpenSSH", "unknown")])
def test_judge_unknown_gives_nothing(name: str, version: str) -> None:
    assert judge(DATA, name, version, TODAY) is None


def _banner(product: str, version: str, where: str = "127.0.0.1:22/tcp (ssh)") -> Banner:
    return Banner(product, version, BannerSource.SERVICE, where, f"{product} {version}")


def test_eol_findings_report_end_of_life_only() -> None:
    findings = eol_findings(
        [
            _banner("OpenSSH", "7.4"),
            _banner("OpenSSH", "9.2p1 Debian 2+deb12u10", "127.0.0.2:22/tcp (ssh)"),  # supported
            _banner("OpenSSH", "8.1p1"),  # no data for it
            _banner("Varnish", "6.0"),  # unknown product
        ],
        DATA,
        TODAY,
    )
    assert [f.key for f in findings] == ["openssh:7"]
    (f,) = findings
    assert f.check_id == CHECK_ID and CHECK_ID in load_catalog()
    ev = f.evidence
    assert ev["product"] == "OpenSSH" and ev["version"] == "7.4" and ev["cycle"] == "7"
    assert ev["end_date"] == "2024-06-30" and ev["days_past"] == (TODAY - dt.date(2024, 6, 30)).days
    assert ev["seen"] == [{"where": "127.0.0.1:22/tcp (ssh)", "source": "service", "banner": "OpenSSH 7.4"}]
    assert ev["data_date"] == DATA.updated.isoformat()
    assert ev["data_source"] == DATA.products["openssh"].source
    assert "RHEL 7" in ev["note"]
    json.dumps(ev)  # evidence is stored as JSON


def test_eol_findings_group_one_cycle_seen_in_many_places() -> None:
    findings = eol_findings(
        [
            _banner("OpenSSH", "7.4", "a:22/tcp (ssh)"),
            _banner("cpe:/a:openbsd:openssh", "7.4", "a:22/tcp (ssh)"),  # same sighting, via its CPE
            Banner("OpenSSH", "7.9p1", BannerSource.SERVICE, "b:22"),
            Banner("Apache", "2.2.34", BannerSource.HEADER, "https://x/ header server"),
            Banner("jQuery", "1.12.4", BannerSource.HEADER, "https://x/ header x-generator"),
        ],
        None,  # the shipped data
        TODAY,
    )
    by_key = {f.key: f for f in findings}
    assert list(by_key) == ["apache-http-server:2.2", "jquery:1", "openssh:7"]  # sorted: stable order
    ssh = by_key["openssh:7"].evidence
    assert ssh["versions"] == ["7.4", "7.9p1"]
    assert [s["where"] for s in ssh["seen"]] == ["a:22/tcp (ssh)", "b:22"]
    assert by_key["jquery:1"].evidence["end_date"] is None and by_key["jquery:1"].evidence["days_past"] is None


def test_eol_findings_nothing_when_all_supported() -> None:
    assert eol_findings([_banner("OpenSSH", "9.6p1"), _banner("nginx", "1.28.0")], DATA, TODAY) == []


# ------------------------------------------------------------ the data file


def test_shipped_data_covers_the_required_products_with_sources() -> None:
    assert {"nginx", "apache-http-server", "iis", "windows-server", "tomcat", "php", "openssl", "openssh",
            "nodejs", "python", "jquery"} <= set(DATA.products)
    assert DATA.source and DATA.updated
    aliases: dict[str, str] = {}
    for product in DATA.products.values():
        assert product.source.strip()
        assert product.cycles
        for alias in product.aliases:
            assert aliases.setdefault(alias, product.key) == product.key, f"{alias} names two products"
        for c in product.cycles:
            if isinstance(c.eol, dt.date) and c.release_date:
                assert c.release_date < c.eol, f"{product.key} {c.cycle}"


def test_data_round_trips_through_json() -> None:
    again = parse_eol_data(json.loads(json.dumps(DATA.to_json())))
    assert again.products == DATA.products and again.updated == DATA.updated and again.source == DATA.source


def test_write_and_load(tmp_path: Path) -> None:
    path = tmp_path / "eol.json"
    write_eol_data(path, DATA)
    assert load_eol_data(path).products == DATA.products
    assert [p.name for p in tmp_path.iterdir()] == ["eol.json"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ('{"format": 2}', "unsupported format"),
        ('{"format": 1, "updated": "2026-01-01", "source": "s", "products": {}}', "non-empty"),
        ('{"format": 1, "updated": "2026-01-01", "source": "s", "products": {"x": {"source": "s", "cycles": '
         '[{"cycle": "1"}]}}}', "no eol"),
        ('{"format": 1, "updated": "soon", "source": "s", "products": {"x": {"source": "s", "cycles": '
         '[{"cycle": "1", "eol": true}]}}}', "updated"),
    ],
)
def test_bad_data_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "eol.json"
    path.write_text(text)
    with pytest.raises(DataFileError, match=message):
        load_eol_data(path)


def test_missing_data_file_is_an_eol_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="cannot read"):
        load_eol_data(tmp_path / "nope.json")


# ------------------------------------------------------------ refresh


V0_NGINX = [
    {"cycle": "1.30", "releaseDate": "2026-04-14", "eol": False, "latest": "1.30.0",
     "latestReleaseDate": "2026-04-14", "lts": False, "link": None},
    {"cycle": "1.28", "releaseDate": "2025-04-23", "eol": "2026-04-14", "latest": "1.28.2"},
]


def test_refresh_replaces_cycles_and_records_the_import() -> None:
    export = {"nginx": V0_NGINX, "httpd": [{"cycle": "2.4", "eol": False}, {"cycle": "2.2", "eol": "2017-07-11"}]}
    fresh = refresh_from_export(export, DATA, source="export.json from endoflife.date", imported_on=TODAY)
    assert [c.cycle for c in fresh.products["nginx"].cycles] == ["1.30", "1.28"]
    assert fresh.products["nginx"].cycles[1].eol == dt.date(2026, 4, 14)
    assert "export.json" in fresh.products["nginx"].source
    assert [c.cycle for c in fresh.products["apache-http-server"].cycles] == ["2.4", "2.2"]  # via its alias
    assert fresh.products["nginx"].aliases == DATA.products["nginx"].aliases  # banners still resolve
    assert fresh.products["openssh"] == DATA.products["openssh"]  # left out: kept
    assert fresh.updated == TODAY
    assert fresh.imports[-1].products == ("nginx", "apache-http-server")
    assert fresh.imports[-1].source == "export.json from endoflife.date"
    assert DATA.products["nginx"].cycles[0].cycle == "1.29"  # the input is not modified
    # The refreshed data drives verdicts: 1.28 ended on the new date.
    assert _is_eol(fresh, "nginx", "1.28.2", TODAY)
    assert not _is_eol(DATA, "nginx", "1.28.2", TODAY)


def test_refresh_adds_an_unknown_product() -> None:
    fresh = refresh_from_export({"redis": [{"cycle": "6.2", "eol": "2025-02-28"}]}, DATA, imported_on=TODAY)
    redis = fresh.products["redis"]
    assert redis.aliases == ("redis",) and redis.versioning is Versioning.NUMERIC
    assert _is_eol(fresh, "Redis", "6.2.14", TODAY)


@pytest.mark.parametrize(
    "export",
    [
        # API v1, a single product response
        {"schema_version": "1.2.0", "result": {"name": "nginx", "releases": [
            {"name": "1.30", "releaseDate": "2026-04-14", "isEol": False, "eolFrom": None,
             "latest": {"name": "1.30.0", "date": "2026-04-14", "link": "https://nginx.org/en/CHANGES"}},
            {"name": "1.28", "releaseDate": "2025-04-23", "isEol": True, "eolFrom": "2026-04-14", "latest": None},
        ]}},
        # API v1, a list of products
        [{"name": "nginx", "releases": [
            {"name": "1.30", "isEol": False, "eolFrom": None},
            {"name": "1.28", "isEol": True, "eolFrom": "2026-04-14"},
        ]}],
        # API v1 responses keyed by product
        {"nginx": {"schema_version": "1.2.0", "result": {"name": "nginx", "releases": [
            {"name": "1.30", "isEol": False, "eolFrom": None},
            {"name": "1.28", "isEol": True, "eolFrom": "2026-04-14"},
        ]}}},
    ],
)
def test_refresh_reads_api_v1_shapes(export: Any) -> None:
    fresh = refresh_from_export(export, DATA, imported_on=TODAY)
    cycles = fresh.products["nginx"].cycles
    assert [(c.cycle, c.eol) for c in cycles] == [("1.30", False), ("1.28", dt.date(2026, 4, 14))]


@pytest.mark.parametrize(
    ("export", "message"),
    [
        ({"nginx": [{"cycle": 1.1, "eol": False}]}, "number"),  # 1.10 would read as 1.1
        ({"nginx": [{"cycle": "1.30", "eol": "soon"}]}, r"nginx\[0\] \(1.30\).eol"),
        ({"nginx": [{"cycle": "1.30"}]}, "no eol"),
        ({"nginx": []}, "non-empty list"),
        ({"nginx": "1.30"}, "expected a list"),
        ({"nginx": [{"cycle": "1.30", "eol": False}, {"cycle": "1.30", "eol": True}]}, "twice"),
        ({"apache": [{"cycle": "2.4", "eol": False}], "httpd": [{"cycle": "2.4", "eol": False}]}, "second time"),
        ({}, "no products"),
        ("nginx", "object or list"),
        ([{"name": "nginx"}], "with releases"),
    ],
)
def test_refresh_refuses_bad_exports(export: Any, message: str) -> None:
    with pytest.raises(DataFileError, match=message):
        refresh_from_export(export, DATA, imported_on=TODAY)


def test_refreshed_data_survives_write_and_load(tmp_path: Path) -> None:
    fresh = refresh_from_export({"nginx": V0_NGINX}, DATA, source="offline export", imported_on=TODAY)
    path = tmp_path / "eol.json"
    write_eol_data(path, fresh)
    again = load_eol_data(path)
    assert again.products == fresh.products
    assert again.imports == fresh.imports and again.imports[-1].date == TODAY
