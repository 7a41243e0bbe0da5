"""Whether a scan reached the asset's service at all, before its probes run.

Collect: one TCP connection (and, for TLS schemes, one handshake) per pinned
address of the asset's own port, through the scan's connector, so the host's
concurrency gate and budget hold, until one address completes it. The handshake
is the ``tls`` probe's certificate capture (:func:`probes.net.handshake.capture_chain`:
permissive, with the asset's SNI), kept in ``Reach.captured`` and handed to the
probes, so the server signs once for both. Judge: the service was reached when any
address completed it. A server that answers the handshake with a TLS alert
speaks TLS (it may want a client certificate) and counts as reached; one that
resets, closes, times out or answers in another protocol does not.

The result is recorded as the scan's ``reach`` step; a configured asset that
could not be reached gets the ``asset.unreachable`` finding on it, and the next
scan that reaches the service proves that finding fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.checks import AgentCheck
from probes.base import ErrorKind, Finding, ProbeFailure, ProbeResult, RunStatus, Target, error_result
from probes.base import ProtocolFailure as _Protocol
from probes.net.connector import Connector
from probes.net.handshake import Capture, capture_chain, capture_key, sni_for
from state.records import REACH_STEP
from vocab import one_line

STEP = REACH_STEP  # the step's name in a scan's probe runs
CHECK = AgentCheck.ASSET_UNREACHABLE.value
OK = "ok"


@dataclass(frozen=True)
class Reach:
    """Per address: ``"ok"`` or why it was not reached; and the handshake that reached it."""

    addresses: Mapping[str, str]
    captured: Mapping[tuple[str, int, str], Capture] = field(default_factory=dict)

    @property
    def reached(self) -> bool:
        return any(v == OK for v in self.addresses.values())

    @property
    def reason(self) -> str:
        return "; ".join(f"{a}: {why}" for a, why in self.addresses.items())


def _speaks_tls(exc: ProbeFailure) -> bool:
    """A handshake that ended in an alert from the server: the server speaks TLS."""
    text = str(exc).upper()
    return isinstance(exc, _Protocol) and "ALERT" in text and "WRONG_VERSION" not in text


async def collect(target: Target, connector: Connector, timeout: float) -> Reach:
    sni = sni_for(target.host) if target.uses_tls else None
    out: dict[str, str] = {}
    captured: dict[tuple[str, int, str], Capture] = {}
    for address in target.addresses:
        try:
            if target.uses_tls:
                captured[capture_key(address, target.port, sni)] = await capture_chain(
                    connector, target.host, address, target.port, sni=sni, timeout=timeout,
                    keep_session=target.is_web)  # the asset's HTTP connections resume it
            else:
                async with connector.open(target.host, address, target.port, timeout=timeout):
                    pass
            out[address] = OK
        except ProbeFailure as exc:
            out[address] = OK if _speaks_tls(exc) else one_line(exc)
        except OSError as exc:  # closing a half-dead connection
            out[address] = one_line(exc)
        if out[address] == OK:
            break  # one address answering is enough: the service is reachable
    return Reach(out, captured)


def judged(target: Target, reach: Reach, configured: bool) -> ProbeResult:
    """The ``reach`` step's result: OK, or an error with ``asset.unreachable`` for a configured asset."""
    observations = {"port": target.port, "addresses": dict(reach.addresses)}
    if reach.reached:
        return ProbeResult(probe=STEP, status=RunStatus.OK, observations=observations)
    service = "TLS service" if target.uses_tls else "service"
    message = f"nothing answered: the {service} on port {target.port} could not be reached ({reach.reason})"
    return unreachable(target.name, message, ErrorKind.CONNECT, observations, configured)


def unreachable(asset: str, message: str, kind: ErrorKind, observations: Mapping[str, object],
                configured: bool) -> ProbeResult:
    findings = (Finding(CHECK, asset, {"reason": message}),) if configured else ()
    result = error_result(STEP, _Failure(message), observations=dict(observations), findings=findings)
    if result.error is not None and result.error.kind is not kind:
        from dataclasses import replace

        result = replace(result, error=replace(result.error, kind=kind))
    return result


class _Failure(ProbeFailure):
    kind = ErrorKind.CONNECT
