"""TLS servers that really offer what the TLS strength checks judge, on loopback only.

* :func:`nginx_tls`: Debian nginx (OpenSSL 3) with its own prefix, config and
  error log in a temporary directory, ``daemon off``, stopped by PID. With
  ``@SECLEVEL=0`` it still speaks TLS 1.0/1.1 and anonymous or NULL suites.
* :func:`openssl_server`: ``openssl s_server`` on one address (NULL suites,
  static-RSA-only suites).
* :func:`tlslite_server`: a tlslite-ng server, the only thing here that still
  speaks SSLv3.
* :func:`scripted_server`: answers every ClientHello with bytes a test
  chooses (HelloRetryRequests, EXPORT ServerHellos, record-layer quirks,
  garbage, silence).
* :func:`gnutls_scan`: GnuTLS's ``gnutls-serv`` offers RC4 and 3DES but binds
  every interface, so it runs in a private network namespace (``unshare -n``)
  together with the scanner: this module's ``__main__`` starts it, scans it and
  prints the :class:`SuiteScan` as JSON, which the test parses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probes.tls.suites import SuiteScan

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {host}:{port}")
        with suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:g}s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop one process we started, by its PID."""
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


# ---------------------------------------------------------------- nginx


@dataclass(frozen=True)
class NginxSite:
    """One ``server`` block: where it listens and what TLS it offers."""

    endpoint: Endpoint
    protocols: str = "TLSv1.2 TLSv1.3"
    ciphers: str = "HIGH:!aNULL"
    prefer_server_ciphers: bool = False
    dhparam: Path | None = None


#: What ``nginx_tls(logs=True)`` writes per request, space-separated, in this order.
NGINX_LOG_FIELDS = ("$server_addr", "$connection", "$connection_requests", "$msec", "$connection_time",
                    "$request_time", "$ssl_session_reused", "$status")


@contextmanager
def nginx_tls(workdir: Path, cert: Path, key: Path, sites: Sequence[NginxSite], *,
              workers: int = 1, status: Endpoint | None = None, logs: bool = False,
              limit_conn: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run nginx with ``sites`` until the block ends; ``status`` adds a plain-HTTP stub_status page.

    ``logs``: an access log (``access.log``, :data:`NGINX_LOG_FIELDS` per request) and the
    error log at ``info`` (every failed or abandoned handshake is a line). ``limit_conn``:
    at most that many connections with a request in progress per server address; a request
    over it is answered 429 (nginx's ``limit_conn``), which the access log shows.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    servers = []
    for site in sites:
        dh = f"ssl_dhparam {site.dhparam};" if site.dhparam else ""
        servers.append(
            f"""  server {{
    listen {site.endpoint.host}:{site.endpoint.port} ssl;
    ssl_certificate {cert}; ssl_certificate_key {key};
    ssl_protocols {site.protocols};
    ssl_ciphers "{site.ciphers}";
    ssl_prefer_server_ciphers {"on" if site.prefer_server_ciphers else "off"};
    {dh}
    location / {{ return 200 "ok"; }}
  }}"""
        )
    if status is not None:
        servers.append(f"  server {{ listen {status.host}:{status.port}; location / {{ stub_status; }} }}")
    temp = workdir / "tmp"
    extra = ""
    if logs:
        extra += (f"  log_format fields '{' '.join(NGINX_LOG_FIELDS)}';\n"
                  f"  access_log {workdir / 'access.log'} fields;\n")
    if limit_conn is not None:
        extra += (f"  limit_conn_zone $server_addr zone=perhost:10m;\n  limit_conn perhost {limit_conn};\n"
                  "  limit_conn_status 429;\n")
    conf = f"""worker_processes {workers};
error_log {workdir / "error.log"} {"info" if logs else "warn"};
pid {workdir / "nginx.pid"};
events {{ worker_connections 4096; }}
http {{
{extra}{"" if logs else "  access_log off;"}
  client_body_temp_path {temp}; proxy_temp_path {temp}; fastcgi_temp_path {temp};
  uwsgi_temp_path {temp}; scgi_temp_path {temp};
{chr(10).join(servers)}
}}
"""
    (workdir / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(
        ["nginx", "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for site in sites:
            wait_port(site.endpoint.host, site.endpoint.port, proc=proc)
        yield proc
    finally:
        stop(proc, signal.SIGQUIT)


def stub_accepts(status: Endpoint) -> int:
    """Connections nginx has accepted so far (its stub_status ``accepts`` counter)."""
    with socket.create_connection((status.host, status.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: status\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    numbers = data.split(b"\r\n\r\n", 1)[1].splitlines()[2].split()
    return int(numbers[0])


# ---------------------------------------------------------------- openssl s_server


@contextmanager
def openssl_server(cert: Path, key: Path, host: str, *args: str) -> Iterator[Endpoint]:
    """``openssl s_server`` on ``host`` (a loopback address) with extra ``args``."""
    port = free_port(host)
    proc = subprocess.Popen(
        ["openssl", "s_server", "-quiet", "-accept", f"{host}:{port}", "-cert", str(cert), "-key", str(key), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(host, port, proc=proc)
        yield Endpoint(host, port)
    finally:
        stop(proc)


# ---------------------------------------------------------------- threaded servers


@contextmanager
def _accept_loop(host: str, handle: Callable[[socket.socket], None]) -> Iterator[Endpoint]:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    listener.listen(64)
    listener.settimeout(0.1)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=_guarded, args=(handle, conn), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield Endpoint(host, int(listener.getsockname()[1]))
    finally:
        done.set()
        thread.join(2)
        listener.close()


def _guarded(handle: Callable[[socket.socket], None], conn: socket.socket) -> None:
    try:
        conn.settimeout(5)
        handle(conn)
    except Exception:  # a test server must survive any client
        pass
    finally:
        conn.close()


@contextmanager
def tlslite_server(cert_pem: bytes, key_pem: bytes, host: str, *, versions: tuple[tuple[int, int], tuple[int, int]],
                   ciphers: Sequence[str], **settings_extra: Any) -> Iterator[Endpoint]:
    """A tlslite-ng server: ``versions`` is (min, max) as wire tuples, ``ciphers`` tlslite cipher names.

    ``settings_extra`` sets more HandshakeSettings attributes (``keyExchangeNames``, ``dhParams``...).
    """
    from tlslite.api import HandshakeSettings, TLSConnection, X509CertChain, parsePEMKey

    key = parsePEMKey(key_pem.decode(), private=True)
    chain = X509CertChain()
    chain.parsePemList(cert_pem.decode())
    settings = HandshakeSettings()
    settings.minVersion, settings.maxVersion = versions
    settings.cipherNames = list(ciphers)
    for name, value in settings_extra.items():
        setattr(settings, name, value)

    def handle(conn: socket.socket) -> None:
        TLSConnection(conn).handshakeServer(certChain=chain, privateKey=key, settings=settings)

    with _accept_loop(host, handle) as endpoint:
        yield endpoint


def read_client_hello(conn: socket.socket) -> bytes:
    """The first TLS record a client sends (its ClientHello)."""
    head = _read_exactly(conn, 5)
    return head + _read_exactly(conn, int.from_bytes(head[3:5], "big"))


def _read_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client closed")
        data += chunk
    return data


@contextmanager
def scripted_server(answer: Callable[[bytes], bytes | None], host: str, *, hold: float = 0.0) -> Iterator[Endpoint]:
    """Answer each ClientHello with ``answer(hello)``; None closes without a word.

    ``hold`` keeps the connection open (silent) that many seconds after answering.
    """

    def handle(conn: socket.socket) -> None:
        reply = answer(read_client_hello(conn))
        if reply:
            conn.sendall(reply)
        if hold:
            time.sleep(hold)

    with _accept_loop(host, handle) as endpoint:
        yield endpoint


# ---------------------------------------------------------------- gnutls-serv in a namespace

GNUTLS_PORT = 4433  # inside the private namespace nothing else listens


def gnutls_scan(cert: Path, key: Path, priority: str, *, sni: str = "localhost", timeout: float = 30) -> SuiteScan:
    """Start gnutls-serv in a private network namespace, scan it there, return the scan.

    Root uses ``unshare -n``; without CAP_SYS_ADMIN (or when that is refused) a user
    namespace is tried, ``unshare -r -n``, which needs unprivileged user namespaces.
    """
    script = 'ip link set lo up && exec "$0" -m tests.support.tls_servers "$@"'
    args = [sys.executable, "gnutls-scan", "--cert", str(cert), "--key", str(key), "--priority", priority,
            "--sni", sni]
    attempts = [["unshare", "-n"], ["unshare", "-r", "-n"]] if os.geteuid() == 0 else [["unshare", "-r", "-n"]]
    errors = []
    for unshare in attempts:
        done = subprocess.run([*unshare, "sh", "-c", script, *args], cwd=REPO, capture_output=True,
                              timeout=timeout, check=False)
        if done.returncode == 0:
            return scan_from_json(json.loads(done.stdout))
        errors.append(f"{' '.join(unshare)}: exit {done.returncode}: {done.stderr.decode()[-1500:]}")
        if b"unshare failed" not in done.stderr:
            break  # the namespace worked; the scan itself failed
    raise RuntimeError("namespace scan failed; " + " | ".join(errors))


def gnutls_probe(cert: Path, key: Path, priority: str, *, host: str, ca_bundle: Path, dhparams: Path | None = None,
                 timeout: float = 60) -> dict[str, Any]:
    """Like :func:`gnutls_scan`, but runs the whole ``tls`` probe on ``tls://host:4433``.

    Returns the probe result as JSON: ``status``, ``error``, ``findings`` (check id ->
    evidence), ``severities`` (check id -> the finding's own severity or None) and ``observations``.
    """
    script = 'ip link set lo up && exec "$0" -m tests.support.tls_servers "$@"'
    args = [sys.executable, "gnutls-probe", "--cert", str(cert), "--key", str(key), "--priority", priority,
            "--sni", host, "--ca-bundle", str(ca_bundle)]
    if dhparams is not None:
        args += ["--dhparams", str(dhparams)]
    attempts = [["unshare", "-n"], ["unshare", "-r", "-n"]] if os.geteuid() == 0 else [["unshare", "-r", "-n"]]
    errors = []
    for unshare in attempts:
        done = subprocess.run([*unshare, "sh", "-c", script, *args], cwd=REPO, capture_output=True,
                              timeout=timeout, check=False)
        if done.returncode == 0:
            result: dict[str, Any] = json.loads(done.stdout)
            return result
        errors.append(f"{' '.join(unshare)}: exit {done.returncode}: {done.stderr.decode()[-1500:]}")
        if b"unshare failed" not in done.stderr:
            break
    raise RuntimeError("namespace probe failed; " + " | ".join(errors))


def scan_from_json(data: dict[str, Any]) -> SuiteScan:
    return SuiteScan(
        address=data["address"],
        port=data["port"],
        protocols=dict(data["protocols"]),
        suites={p: tuple(s) for p, s in data["suites"].items()},
        preferred=dict(data["preferred"]),
        groups=tuple(data["groups"]),
        connections=data["connections"],
        server_order=dict(data.get("server_order", {})),
        secure_renegotiation=data.get("secure_renegotiation"),
        fallback_scsv=data.get("fallback_scsv"),
    )


def _gnutls_main(args: argparse.Namespace) -> int:
    """Inside the namespace: run gnutls-serv, scan it, print the scan as JSON."""
    others = [name for _, name in socket.if_nameindex() if name != "lo"]
    if others:  # gnutls-serv listens on every interface: only ever inside a private namespace
        print(f"refusing: interfaces besides lo present ({', '.join(others)})", file=sys.stderr)
        return 2
    from probes.net.connector import Connector
    from probes.net.scope import Pins
    from probes.tls.suites import scan_suites

    proc = subprocess.Popen(
        ["gnutls-serv", "--x509certfile", args.cert, "--x509keyfile", args.key, "-p", str(GNUTLS_PORT),
         "--priority", args.priority],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port("127.0.0.1", GNUTLS_PORT, proc=proc)
        pins = Pins.of({args.sni: ["127.0.0.1"]})
        scan = asyncio.run(scan_suites(Connector(pins), args.sni, "127.0.0.1", GNUTLS_PORT, sni=args.sni,
                                       deadline=20))
    finally:
        stop(proc)
    print(json.dumps(scan.to_json()))
    return 0


def _gnutls_probe_main(args: argparse.Namespace) -> int:
    """Inside the namespace: run gnutls-serv, run the tls probe on it, print the result as JSON."""
    others = [name for _, name in socket.if_nameindex() if name != "lo"]
    if others:
        print(f"refusing: interfaces besides lo present ({', '.join(others)})", file=sys.stderr)
        return 2
    from probes.base import Limits
    from probes.tls.probe import TlsProbe
    from tests.support.context import make_target, probe_context

    async def run() -> Any:
        target = make_target(f"tls://{args.sni}:{GNUTLS_PORT}", ("127.0.0.1",))
        limits = Limits(connect_timeout=3.0, request_deadline=5.0, probe_deadline=40.0)
        async with probe_context(target, limits=limits, ca_bundle=args.ca_bundle) as ctx:
            return await TlsProbe().run(target, ctx)

    extra = ["--dhparams", args.dhparams] if args.dhparams else []
    proc = subprocess.Popen(
        ["gnutls-serv", "--x509certfile", args.cert, "--x509keyfile", args.key, "-p", str(GNUTLS_PORT),
         "--priority", args.priority, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port("127.0.0.1", GNUTLS_PORT, proc=proc)
        result = asyncio.run(run())
    finally:
        stop(proc)
    print(json.dumps({
        "status": result.status.value,
        "error": result.error,
        "findings": {f.check_id: f.evidence for f in result.findings},
        "severities": {f.check_id: f.severity for f in result.findings},  # None: the catalog's default
        "observations": result.observations,
    }, default=str))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.tls_servers")
    sub = parser.add_subparsers(dest="command", required=True)
    gnutls = sub.add_parser("gnutls-scan", help="inside a private network namespace only")
    gnutls.add_argument("--cert", required=True)
    gnutls.add_argument("--key", required=True)
    gnutls.add_argument("--priority", required=True)
    gnutls.add_argument("--sni", default="localhost")
    whole = sub.add_parser("gnutls-probe", help="inside a private network namespace only")
    whole.add_argument("--cert", required=True)
    whole.add_argument("--key", required=True)
    whole.add_argument("--priority", required=True)
    whole.add_argument("--sni", default="localhost")
    whole.add_argument("--ca-bundle", required=True)
    whole.add_argument("--dhparams")
    args = parser.parse_args(argv)
    return _gnutls_probe_main(args) if args.command == "gnutls-probe" else _gnutls_main(args)


if __name__ == "__main__":
    sys.exit(main())


# ---------------------------------------------------------------- scripted answers


def parse_client_hello(data: bytes) -> Any:
    """tlslite's view of a ClientHello record (as read by :func:`read_client_hello`)."""
    from tlslite.messages import ClientHello
    from tlslite.utils.codec import Parser

    return ClientHello().parse(Parser(bytearray(data[6:])))


def offered_version(hello: Any) -> tuple[int, int]:
    from tlslite.constants import ExtensionType

    versions = hello.getExtension(ExtensionType.supported_versions)
    if versions is not None:
        return max(tuple(v) for v in versions.versions)
    return tuple(hello.client_version)


def tls_record(ctype: int, payload: bytes, version: tuple[int, int] = (3, 3)) -> bytes:
    return bytes([ctype, *version]) + len(payload).to_bytes(2, "big") + payload


def alert_record(description: int, version: tuple[int, int] = (3, 3)) -> bytes:
    return tls_record(21, bytes([2, description]), version)


def server_hello_message(version: tuple[int, int], suite: int, *, tls13_group: int | None = None,
                         retry_group: int | None = None) -> bytes:
    """A ServerHello handshake message (type + length + body), TLS 1.3 or HRR when asked."""
    from tlslite import extensions as ext
    from tlslite.constants import TLS_1_3_HRR
    from tlslite.messages import ServerHello

    extensions: list[Any] = []
    random = bytearray(os.urandom(32))
    wire = version
    if retry_group is not None:
        random = bytearray(TLS_1_3_HRR)
        extensions = [ext.SrvSupportedVersionsExtension().create((3, 4)),
                      ext.HRRKeyShareExtension().create(retry_group)]
        wire = (3, 3)
    elif tls13_group is not None:
        share = ext.KeyShareEntry().create(tls13_group, bytearray(32))
        extensions = [ext.SrvSupportedVersionsExtension().create((3, 4)),
                      ext.ServerKeyShareExtension().create(share)]
        wire = (3, 3)
    hello = ServerHello().create(wire, random, bytearray(), suite, extensions=extensions or None)
    return bytes(hello.write())
