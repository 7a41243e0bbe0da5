"""What nginx saw of one tool's run: connections, handshakes, and per-host concurrency.

Read from the logs ``tests.support.tls_servers.nginx_tls(logs=True, limit_conn=N)`` writes:

* ``access.log``: one line per request with ``NGINX_LOG_FIELDS`` (server address,
  connection serial, ``$msec`` at the end of the request, ``$connection_time`` (the
  connection's age then), ``$ssl_session_reused``, status). A connection that carried
  requests is known from its serial; it was open at least from ``msec - connection_time``
  of any of its requests to the ``msec`` of its last one. Those intervals give the most
  connections with requests open at once per server address, a lower bound of the true
  peak: a kept-alive connection is open after its last request too, and a connection that
  carried no request (a raw TLS hello, a TCP reach check) is not in the access log.
* nginx's own ``limit_conn`` per server address answers 429 to a request over the limit
  (it counts connections with a request in progress): every 429 is a politeness breach.
* ``error.log`` at ``info``: a handshake nginx refused (a hello for a version or suite it
  does not offer) is one ``SSL_do_handshake() failed`` line; the server spent no
  signature on it. A connection closed before any hello (a TCP reach check) is a
  ``client closed connection while SSL handshaking`` line.

Connections are nginx's ``stub_status`` accepts, taken by the caller around the run.
A full handshake is an accepted connection that neither resumed a session nor had its
hello refused (it includes raw hellos a scanner abandons after the server's first
flight: the server has signed by then).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass
class LogMark:
    """Where the logs ended before a run (bytes), so a run reads only its own lines."""

    access: int
    error: int

    @classmethod
    def of(cls, workdir: Path) -> LogMark:
        return cls(_size(workdir / "access.log"), _size(workdir / "error.log"))


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _since(path: Path, offset: int) -> list[str]:
    if not path.exists():
        return []
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace").splitlines()


@dataclass(frozen=True)
class ServerSide:
    connections: int  # TCP connections accepted (stub_status)
    http_connections: int  # of those, ones that carried at least one request
    requests: int
    resumed: int  # HTTP connections whose TLS session was resumed
    refused_hellos: int  # handshakes nginx refused (cheap: no signature)
    no_hello: int  # connections closed before any hello (a TCP reach check)
    rejected_429: int  # requests over the per-host limit_conn
    max_concurrent: int  # most HTTP connections open at once to one server address (lower bound)

    @property
    def full_handshakes(self) -> int:
        return max(self.connections - self.resumed - self.refused_hellos - self.no_hello, 0)

    def per_endpoint(self, size: int) -> dict[str, float]:
        return {
            "connections": round(self.connections / size, 1),
            "http_connections": round(self.http_connections / size, 1),
            "requests": round(self.requests / size, 1),
            "full_handshakes": round(self.full_handshakes / size, 1),
            "resumed": round(self.resumed / size, 1),
            "refused_hellos": round(self.refused_hellos / size, 1),
        }


def read(workdir: Path, mark: LogMark, accepted: int, *, ignore: str) -> ServerSide:
    """The run's server-side figures; ``ignore``: the stub_status address (the bench's own requests)."""
    spans: dict[tuple[str, str], list[float]] = {}
    resumed: set[tuple[str, str]] = set()
    requests = rejected = 0
    for line in _since(workdir / "access.log", mark.access):
        parts = line.split()
        if len(parts) != 8 or parts[0] == ignore:
            continue
        addr, conn, _, msec, age, _, reused, status = parts
        key = (addr, conn)
        end = float(msec)
        start = end - float(age)
        span = spans.setdefault(key, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
        requests += 1
        if reused == "r":
            resumed.add(key)
        if status == "429":
            rejected += 1
    errors = _since(workdir / "error.log", mark.error)
    refused = sum(1 for line in errors if "SSL_do_handshake() failed" in line)
    no_hello = sum(1 for line in errors if "client closed connection while SSL handshaking" in line)
    return ServerSide(
        connections=accepted,
        http_connections=len(spans),
        requests=requests,
        resumed=len(resumed),
        refused_hellos=refused,
        no_hello=no_hello,
        rejected_429=rejected,
        max_concurrent=_peak(spans),
    )


def _peak(spans: dict[tuple[str, str], list[float]]) -> int:
    """The most intervals open at once at one address (an end at the same instant as a start does not overlap)."""
    events: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for (addr, _), (start, end) in spans.items():
        events[addr] += [(start, 1), (end, -1)]
    peak = 0
    for evs in events.values():
        open_now = 0
        for _, delta in sorted(evs):  # at equal times -1 sorts first
            open_now += delta
            peak = max(peak, open_now)
    return peak


def process_tree_cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by ``root`` and its children (nginx: the master and
    its workers), from ``/proc``: what serving the scan cost the server side."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        pid, ppid = int(entry.name), int(fields[1])
        if pid == root or ppid == root:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick
