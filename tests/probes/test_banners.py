"""Banner extraction, table-driven: headers and nmap services."""

from __future__ import annotations

import pytest

from probes.eol.banners import (
    Banner,
    BannerSource,
    default_rules,
    from_headers,
    from_service,
    product_tokens,
)


def pairs(banners: list[Banner]) -> list[tuple[str, str]]:
    return [(b.product, b.version) for b in banners]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("Server", "nginx/1.18.0 (Ubuntu)", [("nginx", "1.18.0")]),
        ("Server", "nginx", []),
        ("Server", "Apache/2.4.6 (CentOS) OpenSSL/1.0.2k-fips PHP/5.4.16",
         [("Apache", "2.4.6"), ("OpenSSL", "1.0.2k-fips"), ("PHP", "5.4.16")]),
        ("Server", "Apache/2.2.15 (Red Hat) mod_ssl/2.2.15 OpenSSL/1.0.1e-fips",
         [("Apache", "2.2.15"), ("mod_ssl", "2.2.15"), ("OpenSSL", "1.0.1e-fips")]),
        ("Server", "Microsoft-IIS/8.5", [("Microsoft-IIS", "8.5")]),
        ("Server", "Apache-Coyote/1.1", [("Apache-Coyote", "1.1")]),
        ("server", "WSGIServer/0.2 CPython/3.8.10", [("WSGIServer", "0.2"), ("CPython", "3.8.10")]),
        ("Server", "cloudflare", []),
        ("X-Powered-By", "PHP/7.4.3", [("PHP", "7.4.3")]),
        ("X-Powered-By", "Express", []),
        ("X-Powered-By", "ASP.NET", []),
        ("X-Powered-By", "Servlet/3.0 JSP/2.2 (Apache Tomcat/7.0.42 Java/Oracle Corporation/1.7)",
         [("Servlet", "3.0"), ("JSP", "2.2"), ("Apache Tomcat", "7.0.42"), ("Corporation", "1.7")]),
        ("X-Powered-By", "Powered By Apache/2.4", [("Apache", "2.4")]),
        ("X-AspNet-Version", "4.0.30319", [("ASP.NET", "4.0.30319")]),
        ("Content-Type", "text/html; version/1.0", []),  # not a banner header
        ("Via", "1.1 varnish/6.0", []),
    ],
)
def test_headers(name: str, value: str, expected: list[tuple[str, str]]) -> None:
    found = from_headers([(name, value)], "https://example.test/")
    assert pairs(found) == expected
    for b in found:
        assert b.source is BannerSource.HEADER
        assert b.where == f"https://example.test/ header {name.lower()}"
        assert b.raw == value


def test_url_paths_are_not_product_tokens() -> None:
    assert list(product_tokens("see /static/app/1.2/main.js and libs/jquery/3.6.0")) == []


@pytest.mark.parametrize(
    ("product", "version", "extrainfo", "cpes", "expected"),
    [
        ("OpenSSH", "7.4", "protocol 2.0", ["cpe:/a:openbsd:openssh:7.4"],
         [("OpenSSH", "7.4"), ("cpe:/a:openbsd:openssh", "7.4")]),
        ("OpenSSH", "9.2p1 Debian 2+deb12u10", "protocol 2.0", [], [("OpenSSH", "9.2p1 Debian 2+deb12u10")]),
        ("Apache httpd", "2.4.6", "(CentOS) OpenSSL/1.0.2k-fips PHP/5.4.16", ["cpe:/a:apache:http_server:2.4.6"],
         [("Apache httpd", "2.4.6"), ("OpenSSL", "1.0.2k-fips"), ("PHP", "5.4.16"),
          ("cpe:/a:apache:http_server", "2.4.6")]),
        ("BaseHTTPServer", "0.6", "Python 3.11.7", ["cpe:/a:python:python:3.11.7"],
         [("BaseHTTPServer", "0.6"), ("Python", "3.11.7"), ("cpe:/a:python:python", "3.11.7")]),
        ("Microsoft IIS httpd", "10.0", "", ["cpe:/o:microsoft:windows"], [("Microsoft IIS httpd", "10.0")]),
        ("nginx", "", "", [], []),  # no version, no banner
        ("", "", "", [], []),
    ],
)
def test_nmap_service(
    product: str, version: str, extrainfo: str, cpes: list[str], expected: list[tuple[str, str]]
) -> None:
    found = from_service(product, version, extrainfo, cpes, "127.0.0.1:22/tcp (ssh)")
    assert pairs(found) == expected
    assert all(b.source is BannerSource.SERVICE and b.where == "127.0.0.1:22/tcp (ssh)" for b in found)


def test_raw_text_is_capped() -> None:
    (b,) = from_headers([("Server", "nginx/1.18.0 " + "x" * 500)])
    assert len(b.raw) == 200 and b.raw.endswith("…")


def test_rules_file_names_the_version_headers() -> None:
    rules = default_rules()
    assert "server" in rules.headers and "x-powered-by" in rules.headers
