"""A real WAF on loopback for tests: nginx with ModSecurity v3 and the OWASP Core Rule Set.

Uses Debian's packages (nginx, libnginx-mod-http-modsecurity, modsecurity-crs).
Debian's CRS loader (/usr/share/modsecurity-crs/owasp-crs.load) uses
``IncludeOptional``, which libmodsecurity rejects, so the rules file written
here includes ``crs-setup.conf`` and every ``rules/*.conf`` by name.

nginx runs in the foreground (``-g 'daemon off;'``) with its own prefix,
config, pid and logs in a temporary directory, listens on one loopback address
and port, proxies to a test origin (or serves a static page), and is stopped by
the PID of the process started here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MODULE = Path("/usr/lib/nginx/modules/ngx_http_modsecurity_module.so")
CRS_RULES = Path("/usr/share/modsecurity-crs/rules")
CRS_SETUP_CANDIDATES = (
    Path("/etc/modsecurity/crs/crs-setup.conf"),
    Path("/usr/share/modsecurity-crs/crs-setup.conf.example"),
)


def _require() -> tuple[str, Path]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    missing = [str(p) for p in (Path(nginx), MODULE, CRS_RULES) if not p.exists()]
    setup = next((p for p in CRS_SETUP_CANDIDATES if p.exists()), None)
    if setup is None:
        missing.append(str(CRS_SETUP_CANDIDATES[0]))
    if missing:
        raise RuntimeError(
            "nginx + ModSecurity + CRS missing (apt-get install nginx libnginx-mod-http-modsecurity "
            f"modsecurity-crs): {', '.join(missing)}"
        )
    assert setup is not None
    return nginx, setup


def modsecurity_rules(workdir: Path, setup: Path, rule_engine: str = "On") -> str:
    rule_files = sorted(CRS_RULES.glob("*.conf"))
    lines = [
        f"SecRuleEngine {rule_engine}",
        "SecRequestBodyAccess On",
        "SecResponseBodyAccess Off",
        "SecAuditEngine Off",
        f"SecTmpDir {workdir}",
        f"SecDataDir {workdir}",
        f"Include {setup}",
        *(f"Include {f}" for f in rule_files),
    ]
    return "\n".join(lines) + "\n"


def nginx_config(workdir: Path, host: str, port: int, upstream: str | None, block_page: str | None) -> str:
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    if upstream:
        origin = f"proxy_pass {upstream}; proxy_set_header Host $host;"
    else:
        origin = f"root {workdir}/www; index index.html;"
    error_page = ""
    if block_page is not None:
        error_page = (
            "error_page 403 /blocked.html;\n"
            f"    location = /blocked.html {{ internal; modsecurity off; root {workdir}/www; }}\n"
        )
    temp = "\n".join(
        f"  {name}_temp_path {workdir}/tmp_{name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}load_module {MODULE};
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
{temp}
  modsecurity on;
  modsecurity_rules_file {workdir}/modsecurity.conf;
  server {{
    listen {host}:{port};
    server_name _;
    {error_page}
    location / {{ {origin} }}
  }}
}}
"""


@dataclass
class Waf:
    host: str
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def url_for(self, name: str, path: str = "/") -> str:
        return f"http://{name}:{self.port}{path}"

    def error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text("utf-8", errors="replace") if path.exists() else ""


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM to the master: fast shutdown, workers follow
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def modsecurity_waf(
    upstream: str | None = None,
    *,
    host: str = "127.0.0.1",
    block_page: str | None = None,
    rule_engine: str = "On",
) -> Iterator[Waf]:
    """nginx + ModSecurity + CRS in blocking mode in front of ``upstream`` (a URL).

    Without ``upstream`` it serves a static page. ``block_page`` replaces
    nginx's plain 403 page with the given HTML, as sites that brand their
    block page do. ``rule_engine="DetectionOnly"`` is a WAF in log-only mode.
    """
    nginx, setup = _require()
    workdir = Path(tempfile.mkdtemp(prefix="posture-waf-"))
    # nginx workers drop to nobody when started as root: they must read the pages.
    workdir.chmod(0o755)
    www = workdir / "www"
    www.mkdir(mode=0o755)
    (www / "index.html").write_text("<html><body>origin behind the WAF</body></html>\n")
    if block_page is not None:
        (www / "blocked.html").write_text(block_page)
    (workdir / "modsecurity.conf").write_text(modsecurity_rules(workdir, setup, rule_engine))
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(5):
            port = _free_port(host)
            conf = workdir / "nginx.conf"
            conf.write_text(nginx_config(workdir, host, port, upstream, block_page))
            proc = subprocess.Popen(
                [nginx, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log"),
                 "-g", "daemon off;"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None and not _listening(host, port):
                time.sleep(0.05)
            if proc.poll() is None and _listening(host, port):
                break
            _stop(proc)  # lost the port to someone else, or a config error: try again
            proc = None
        if proc is None:
            log = (workdir / "error.log").read_text(errors="replace") if (workdir / "error.log").exists() else ""
            raise RuntimeError(f"nginx with ModSecurity did not start: {log[-2000:]}")
        yield Waf(host, port, workdir, proc)
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
