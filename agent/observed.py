"""Stored probe observations, read through each probe's typed ``Observations`` (for agent/ only).

The state layer keeps observations as JSON; the other layers never walk those
dicts themselves: agent/ reads them here, with the probe's own ``from_json``,
and passes plain values down (schedules must not import probes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from probes.tls.model import Observations as TlsObservations
from schedules.weekly import CertFacts


def tls_certificates(observations: Mapping[str, Any]) -> list[CertFacts]:
    """Every address's leaf certificate with a readable expiry, by address, from one tls run's observations."""
    obs = TlsObservations.from_json(observations)
    return sorted((CertFacts(address, cert.subject or "", cert.not_after)
                   for address, cert in obs.certificates() if cert.not_after is not None),
                  key=lambda c: c.address)


def tls_grade(observations: Mapping[str, Any]) -> str | None:
    """The grade letter of one tls run, when it was graded."""
    return TlsObservations.from_json(observations).grade
