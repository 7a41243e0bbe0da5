"""Pure parts of the ports probe: port table, nmap XML parsing, judging, settings."""

from __future__ import annotations

from typing import Any

import pytest

from probes.base import Severity
from probes.catalog import load_catalog
from probes.ports.judge import (
    CHECK_ID,
    HostScan,
    NmapOutputError,
    PortResult,
    PortState,
    Service,
    allowed_ports,
    default_port_table,
    parse_nmap_xml,
    parse_port_table,
    service_banners,
    unexpected_open,
)
from probes.ports.model import Settings as ScanSettings
from probes.ports.model import SettingsError
from probes.ports.probe import nmap_args, port_spec
from tests.support.context import make_target

TABLE = default_port_table()
MEDIUM = load_catalog()[CHECK_ID].severity

SAMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<nmaprun scanner="nmap" args="nmap -oX - -n -Pn -sT -sV --version-light -p 22,443,3389 127.0.0.81"
 start="1795258136" version="7.93" xmloutputversion="1.05">
<scaninfo type="connect" protocol="tcp" numservices="3" services="22,443,3389"/>
<host starttime="1795258136" endtime="1795258172"><status state="up" reason="user-set" reason_ttl="0"/>
<address addr="127.0.0.81" addrtype="ipv4"/>
<hostnames></hostnames>
<ports><extraports state="closed" count="1"><extrareasons reason="conn-refused" count="1"/></extraports>
<port protocol="tcp" portid="3389"><state state="open" reason="syn-ack" reason_ttl="0"/>
<service name="tcpwrapped" method="probed" conf="8"/></port>
<port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="0"/>
<service name="ssh" product="OpenSSH" version="7.4" extrainfo="protocol 2.0" method="probed" conf="10">
<cpe>cpe:/a:openbsd:openssh:7.4</cpe></service></port>
<port protocol="tcp" portid="443"><state state="open" reason="syn-ack" reason_ttl="0"/>
<service name="http" product="Apache httpd" version="2.2.15" extrainfo="(CentOS) OpenSSL/1.0.1e-fips"
 tunnel="ssl" method="probed" conf="10"><cpe>cpe:/a:apache:http_server:2.2.15</cpe><cpe>cpe:/o:redhat:linux</cpe>
</service></port>
<port protocol="tcp" portid="8080"><state state="filtered" reason="no-response" reason_ttl="0"/>
<service name="http-proxy" method="table" conf="3"/></port>
</ports>
</host>
<host starttime="1795258136" endtime="1795258150" timedout="true"><status state="up" reason="user-set"/>
<address addr="127.0.0.82" addrtype="ipv4"/></host>
<host><status state="up" reason="user-set"/><address addr="2001:db8::1" addrtype="ipv6"/>
<ports><port protocol="tcp" portid="5432"><state state="open" reason="syn-ack"/>
<service name="postgresql" method="table" conf="3"/></port></ports></host>
<runstats><finished time="1795258172" elapsed="36.67" exit="success"/><hosts up="3" down="0" total="3"/></runstats>
</nmaprun>
"""


def test_parse_nmap_xml() -> None:
    run = parse_nmap_xml(SAMPLE)
    assert run.version == "7.93" and run.elapsed == 36.67 and run.exit == "success"
    assert run.args.startswith("nmap -oX - -n -Pn")
    site = run.host("127.0.0.81")
    assert site is not None and not site.timed_out and site.state == "up"
    assert [p.port for p in site.ports] == [22, 443, 3389, 8080]  # sorted
    assert [p.port for p in site.open_ports] == [22, 443, 3389]
    ssh, https = site.ports[0], site.ports[1]
    assert ssh.service == Service("ssh", "OpenSSH", "7.4", "protocol 2.0", "", "probed", 10,
                                  ("cpe:/a:openbsd:openssh:7.4",))
    assert https.service.tunnel == "ssl"
    assert https.service.cpes == ("cpe:/a:apache:http_server:2.2.15", "cpe:/o:redhat:linux")
    assert site.ports[3].state is PortState.FILTERED
    slow = run.host("127.0.0.82")
    assert slow is not None and slow.timed_out and slow.ports == ()
    v6 = run.host("2001:db8::1")
    assert v6 is not None and [p.port for p in v6.open_ports] == [5432]
    assert run.host("127.0.0.99") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('<?xml version="1.0"?><nmaprun><host>', "not complete XML"),  # killed mid-run
        ("", "not complete XML"),
        ("<html><body>hi</body></html>", "not <nmaprun>"),
    ],
)
def test_bad_nmap_output(text: str, message: str) -> None:
    with pytest.raises(NmapOutputError, match=message):
        parse_nmap_xml(text)


def test_nmap_error_exit_is_recorded() -> None:
    run = parse_nmap_xml('<nmaprun args="nmap -p 99999"><runstats>'
                         '<finished exit="error" errormsg="Ports specified must be between 0 and 65535"/>'
                         '</runstats></nmaprun>')
    assert run.exit == "error" and "between 0 and 65535" in run.error and run.hosts == ()


# ------------------------------------------------------------ the port table


@pytest.mark.parametrize(
    ("port", "klass"),
    [
        (21, "file_sharing"), (22, "remote_admin"), (23, "remote_admin"), (25, "mail"), (111, "rpc"),
        (135, "rpc"), (139, "file_sharing"), (445, "file_sharing"), (873, "file_sharing"), (2049, "file_sharing"),
        (1433, "database"), (1521, "database"), (3306, "database"), (3389, "remote_admin"), (5432, "database"),
        (5900, "remote_admin"), (5985, "remote_admin"), (6379, "database"), (9200, "database"),
        (11211, "database"), (27017, "database"), (5984, "database"), (8000, "web_alt"), (8080, "web_alt"),
        (8443, "web_alt"), (8888, "web_alt"), (80, "web"), (443, "web"), (53, "other"),
    ],
)
def test_port_table_classes(port: int, klass: str) -> None:
    assert TABLE.ports[port].klass == klass
    assert TABLE.ports[port].source


def test_port_table_severities_follow_the_risk_classes() -> None:
    high = {k for k, c in TABLE.classes.items() if c.severity is Severity.HIGH}
    assert high == {"remote_admin", "database", "file_sharing"}
    assert all(c.severity is Severity.MEDIUM for k, c in TABLE.classes.items() if k not in high)
    assert len(TABLE.default_ports) >= 100


def test_classify_takes_the_worse_of_port_and_service() -> None:
    klass, why = TABLE.classify(8022, "ssh")
    assert klass.key == "remote_admin" and why == "ssh detected on port 8022"
    klass, why = TABLE.classify(3389, "tcpwrapped")
    assert klass.key == "remote_admin" and why == "port 3389 is ms-wbt-server"
    klass, _ = TABLE.classify(8080, "http")
    assert klass.key == "web_alt"
    klass, why = TABLE.classify(40000, "")
    assert klass.key == "other" and "not in the port table" in why


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[classes.x]\nlabel = "x"\nseverity = "high"', "no 'other' class"),
        ('[classes.other]\nlabel = "o"\nseverity = "medium"\n[[ports]]\nport = 70000\nservice = "s"\nclass = "other"'
         '\nsource = "s"', "bad port"),
        ('[classes.other]\nlabel = "o"\nseverity = "medium"\n[[ports]]\nport = 7\nservice = "s"\nclass = "nope"'
         '\nsource = "s"', "unknown class"),
        ('[classes.other]\nlabel = "o"\nseverity = "medium"\n[[ports]]\nport = 7\nservice = "s"\nclass = "other"',
         "no source"),
    ],
)
def test_bad_port_tables_are_refused(toml: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_port_table(toml)


@pytest.mark.parametrize(
    ("url", "configured", "expected", "source"),
    [
        ("https://www.example.test/", None, {80, 443}, "default"),
        ("http://www.example.test:8080/", None, {80, 443, 8080}, "default"),
        ("wss://stream.example.test/", None, {80, 443}, "default"),
        ("tls://gw.example.test:9443", None, {9443}, "default"),
        ("https://www.example.test/", frozenset({443}), {443}, "configured"),
        ("https://www.example.test/", frozenset(), set(), "configured"),  # nothing agreed: every open port
    ],
)
def test_allowed_ports(url: str, configured: frozenset[int] | None, expected: set[int], source: str) -> None:
    allowed, where = allowed_ports(make_target(url, allowed_ports=configured))
    assert allowed == expected and where.startswith(source)


# ------------------------------------------------------------ judging


def _open(port: int, name: str = "", product: str = "", version: str = "", method: str = "probed") -> PortResult:
    return PortResult(port, "tcp", PortState.OPEN, "syn-ack", Service(name, product, version, method=method))


def test_unexpected_open_both_ways() -> None:
    hosts = [
        HostScan("127.0.0.1", ports=(_open(22, "ssh", "OpenSSH", "9.2p1"), _open(443, "https"),
                                     _open(8080, "http-proxy", method="table"),
                                     PortResult(3306, "tcp", PortState.FILTERED))),
        HostScan("127.0.0.2", ports=(_open(22, "ssh"), _open(8080, "http", "nginx", "1.28.0"))),
    ]
    findings = {f.key: f for f in unexpected_open(hosts, frozenset({443}), TABLE, MEDIUM)}
    assert set(findings) == {"22", "8080"}  # 443 agreed; 3306 filtered is not open
    ssh = findings["22"]
    assert ssh.check_id == CHECK_ID
    assert ssh.severity is Severity.HIGH and ssh.severity_reason == "remote administration: port 22 is ssh"
    assert ssh.evidence["addresses"] == ["127.0.0.1", "127.0.0.2"]
    assert (ssh.evidence["product"], ssh.evidence["version"]) == ("OpenSSH", "9.2p1")
    web = findings["8080"]
    assert web.severity is None and web.severity_reason is None
    assert web.evidence["product"] == "nginx"  # the probed service beats the port-table guess
    assert len(web.evidence["per_address"]) == 2  # the addresses disagree: both recorded

    assert unexpected_open(hosts, frozenset({22, 443, 8080}), TABLE, MEDIUM) == []


def test_service_banners_name_where_they_were_seen() -> None:
    hosts = [HostScan("2001:db8::1", ports=(_open(22, "ssh", "OpenSSH", "7.4"), _open(80, "http")))]
    (b,) = service_banners(hosts)
    assert (b.product, b.version, b.where) == ("OpenSSH", "7.4", "[2001:db8::1]:22/tcp (ssh)")


# ------------------------------------------------------------ command line and settings


@pytest.mark.parametrize(
    ("ports", "spec"),
    [([22], "22"), ([21, 22, 23, 25], "21-23,25"), ([443, 80, 80, 81], "80-81,443"), ([], "")],
)
def test_port_spec(ports: list[int], spec: str) -> None:
    assert port_spec(ports) == spec


def test_nmap_args() -> None:
    args = nmap_args("/usr/bin/nmap", "127.0.0.81", [22, 23, 80], service_detection=False,
                     max_rate=200, host_timeout=59.2)
    assert args[:3] == ["/usr/bin/nmap", "-oX", "-"]
    assert {"-n", "-Pn", "-sT", "--unprivileged", "-T3", "--open"} <= set(args)
    assert args[args.index("--max-rate") + 1] == "200"
    assert args[args.index("--max-retries") + 1] == "1"
    assert args[args.index("--host-timeout") + 1] == "60s"
    assert args[-3:] == ["-p", "22-23,80", "127.0.0.81"]
    assert "-sV" not in args and "-6" not in args
    v6 = nmap_args("nmap", "2001:DB8::1", [443], service_detection=True, max_rate=50, host_timeout=0.2)
    assert {"-sV", "--version-light", "-6"} <= set(v6) and v6[-1] == "2001:db8::1"
    assert v6[v6.index("--host-timeout") + 1] == "1s"


@pytest.mark.parametrize("address", ["ports.test", "-iL/etc/passwd", "127.0.0.1/24", ""])
def test_nmap_args_refuse_anything_but_an_ip_literal(address: str) -> None:
    with pytest.raises(ValueError):
        nmap_args("nmap", address, [22], service_detection=False, max_rate=1, host_timeout=1)


def test_scan_settings_defaults() -> None:
    cfg = ScanSettings.from_settings({}, TABLE)
    assert cfg.port_list == "default" and cfg.ports == TABLE.default_ports
    assert (cfg.nmap_path, cfg.max_rate, cfg.host_timeout, cfg.eol_data) == (None, 200, 60.0, None)
    cfg = ScanSettings.from_settings({"ports": [8443, 22, 22], "max_rate": 50, "host_timeout": 10}, TABLE)
    assert cfg.ports == (22, 8443) and cfg.port_list == "configured" and cfg.host_timeout == 10.0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ports": []}, "ports setting"),
        ({"ports": [22, 65536]}, "ports setting"),
        ({"ports": ["22"]}, "ports setting"),
        ({"ports": [True]}, "ports setting"),
        ({"max_rate": 0}, "max_rate"),
        ({"host_timeout": -1}, "host_timeout"),
        ({"host_timeout": 3601}, "host_timeout"),  # the config's limit is the probe's: one definition
        ({"nmap_path": ""}, "nmap_path"),
        ({"eol_data": 3}, "eol_data"),
        ({"speed": "fast"}, "unknown ports setting"),
    ],
)
def test_bad_scan_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        ScanSettings.from_settings(settings, TABLE)
