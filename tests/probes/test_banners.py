"""Banner extraction, table-driven: headers, pages, SSH identification, nmap services."""

from __future__ import annotations

import pytest

from probes.eol.banners import (
    Banner,
    BannerSource,
    default_rules,
    from_headers,
    from_page,
    from_service,
    from_service_dict,
    from_ssh,
    parse_rules,
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
    ("page", "expected"),
    [
        ("<hr>\n<address>Apache/2.4.41 (Ubuntu) Server at example.test Port 80</address>", [("Apache", "2.4.41")]),
        ("<hr><center>nginx/1.14.2</center>\n</body>", [("nginx", "1.14.2")]),
        ("<hr><center>nginx</center>", []),
        ("<h3>Apache Tomcat/8.5.100</h3></body></html>", [("Apache Tomcat", "8.5.100")]),
        ("<h3>Apache Tomcat/10.1.60 (Debian)</h3></body></html>", [("Apache Tomcat", "10.1.60")]),
        ("<h3>Apache Tomcat/9.0.70 (Red Hat)</h3>", [("Apache Tomcat", "9.0.70")]),
        ("<hr><center>nginx/1.18.0 (Ubuntu)</center>", [("nginx", "1.18.0")]),
        ("<hr><center>nginx/1.22.1+deb12u1</center>", [("nginx", "1.22.1")]),
        ("<hr><center>nginx/1.20.1-fips</center>", [("nginx", "1.20.1")]),
        ("<address>Apache/2.4.62-1ubuntu1 (Debian) Server at x Port 80</address>", [("Apache", "2.4.62")]),
        ("<p>Microsoft-IIS/7.5 Detailed Error</p>", [("Microsoft-IIS", "7.5")]),
        ("<title>PHP 7.4.3 - phpinfo()</title><h1 class='p'>PHP Version 7.4.3</h1>", [("PHP", "7.4.3")]),
        ('<script src="/js/jquery-1.12.4.min.js"></script>', [("jQuery", "1.12.4")]),
        ('<script src="https://code.jquery.com/jquery-3.7.1.slim.min.js"></script>', [("jQuery", "3.7.1")]),
        ('<script src="https://cdnjs.cloudflare.com/ajax/libs/jquery/2.2.4/jquery.min.js">', [("jQuery", "2.2.4")]),
        ("/*! jQuery v1.11.3 | (c) 2005, 2015 jQuery Foundation */", [("jQuery", "1.11.3")]),
        ('<script src="/js/jquery.min.js?ver=3.6.0"></script>', []),  # a query string is not a version
        ("<p>Welcome to our site</p>", []),
    ],
)
def test_pages(page: str, expected: list[tuple[str, str]]) -> None:
    found = from_page(page, "https://example.test/404")
    assert pairs(found) == expected
    assert all(b.source is BannerSource.PAGE and b.where == "https://example.test/404" for b in found)


def test_one_version_seen_twice_on_a_page_is_one_banner() -> None:
    page = '<script src="jquery-1.12.4.js"></script><script src="/x/jquery-1.12.4.js"></script>'
    assert pairs(from_page(page)) == [("jQuery", "1.12.4")]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("SSH-2.0-OpenSSH_7.4\r\n", [("OpenSSH", "7.4")]),
        ("SSH-2.0-OpenSSH_7.4p1 Debian-10+deb9u7", [("OpenSSH", "7.4p1")]),
        ("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", [("OpenSSH", "9.2p1")]),
        ("SSH-1.99-OpenSSH_3.9p1", [("OpenSSH", "3.9p1")]),
        ("SSH-2.0-OpenSSH_for_Windows_8.1", [("OpenSSH_for_Windows", "8.1")]),
        ("SSH-2.0-dropbear_2020.81", [("dropbear", "2020.81")]),
        ("SSH-2.0-Cisco-1.25", [("Cisco", "1.25")]),
        ("SSH-2.0-libssh", []),
        ("HTTP/1.1 400 Bad Request", []),
        ("", []),
    ],
)
def test_ssh_identification(line: str, expected: list[tuple[str, str]]) -> None:
    found = from_ssh(line, "127.0.0.1:22/tcp")
    assert pairs(found) == expected
    assert all(b.source is BannerSource.SSH and b.raw == line.strip() for b in found)


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


def test_python_nmap_service_dict() -> None:
    service = {"name": "ssh", "product": "OpenSSH", "version": "7.4", "extrainfo": "protocol 2.0",
               "conf": "10", "cpe": "cpe:/a:openbsd:openssh:7.4"}
    assert pairs(from_service_dict(service, "x")) == [("OpenSSH", "7.4"), ("cpe:/a:openbsd:openssh", "7.4")]


def test_raw_text_is_capped() -> None:
    (b,) = from_headers([("Server", "nginx/1.18.0 " + "x" * 500)])
    assert len(b.raw) == 200 and b.raw.endswith("…")


def test_rules_file_is_valid_and_every_pattern_has_a_source() -> None:
    rules = default_rules()
    assert "server" in rules.headers and "x-powered-by" in rules.headers
    assert rules.pages and all(p.source for p in rules.pages)
    assert len({p.id for p in rules.pages}) == len(rules.pages)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[page]]\nid = "a"\npattern = "x(?P<product>y)"\nsource = "s"', "no 'version' group"),
        ('[[page]]\nid = "a"\npattern = "(?P<version>1)"\nsource = "s"', "names no product"),
        ('[[page]]\nid = "a"\nproduct = "P"\npattern = "(?P<version>1)"', "no source"),
    ],
)
def test_bad_rules_are_refused(toml: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rules(toml)
