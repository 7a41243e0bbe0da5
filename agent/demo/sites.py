"""The lab's sites: one clean site and one site per kind of finding, as data.

Each problem site is the clean site with exactly one thing wrong, so its
findings are that one thing; ``expected`` lists the checks the demo's scan
must report for it (the clean site: none at all).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

ZONE = "lab.posture.test"


class Defect(enum.StrEnum):
    NONE = "nothing wrong: the clean site must give no finding at all"
    EXPIRED_CERT = "expired certificate"
    LEGACY_TLS = "legacy TLS (1.0/1.1 accepted)"
    NO_EDGE = "no WAF, no CDN (a bare origin)"
    DEBUG_PAGE = "framework debug page (simulated Django, DEBUG = True)"
    SOCIAL_LINK = "social-media link without a warning"
    OPEN_PORT = "unexpected open port"


class SocialLink(enum.StrEnum):
    NONE = "none"
    WARNED = "warned"  # behind a confirm() prompt
    PLAIN = "plain"  # straight to the platform


@dataclass(frozen=True)
class Site:
    asset: str  # the asset's name in the demo config
    label: str  # first DNS label under ZONE
    kind: str  # website | trading | api
    defect: Defect
    title: str
    expected: tuple[str, ...]  # check ids the scan must report for this site

    @property
    def host(self) -> str:
        return f"{self.label}.{ZONE}"

    @property
    def scheme(self) -> str:
        """A TLS service that does not speak HTTP is a tls:// asset (an order gateway)."""
        return "tls" if self.kind == "trading" else "https"

    @property
    def speaks_http(self) -> bool:
        return self.scheme == "https"

    @property
    def edge(self) -> bool:
        """Whether it sits behind the simulated CDN + WAF."""
        return self.defect is not Defect.NO_EDGE

    @property
    def social(self) -> SocialLink:
        if self.defect is Defect.SOCIAL_LINK:
            return SocialLink.PLAIN
        return SocialLink.WARNED if self.defect is Defect.NONE else SocialLink.NONE

    @property
    def about(self) -> str:
        if self.defect is Defect.NONE:
            return "The clean site: nothing here should give posture a finding."
        return f"Something is wrong here on purpose: {self.defect.value}."


SITES: tuple[Site, ...] = (
    Site("clean-site", "www", "website", Defect.NONE, "Posture Lab Securities", ()),
    Site("expired-cert", "expired", "website", Defect.EXPIRED_CERT, "Lab Futures (expired certificate)",
         ("tls.cert.expired",)),
    Site("legacy-tls", "order", "trading", Defect.LEGACY_TLS, "Lab order gateway (TLS 1.0)",
         ("tls.protocol.legacy",)),
    Site("no-waf", "origin", "website", Defect.NO_EDGE, "Lab Investment Trust (bare origin)",
         ("edge.waf.absent", "edge.cdn.absent")),
    Site("debug-page", "debug", "website", Defect.DEBUG_PAGE, "Lab Brokerage (debug mode)",
         ("leak.debug_page",)),
    Site("social-link", "news", "website", Defect.SOCIAL_LINK, "Lab Securities News",
         ("social.link.no_warning",)),
    Site("open-port", "api", "api", Defect.OPEN_PORT, "Lab quotes API (database port open)",
         ("ports.unexpected_open",)),
)
