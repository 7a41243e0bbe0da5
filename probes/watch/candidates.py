"""Lookalike candidates of a domain: dnstwist's permutations, Taiwan's TLD swaps and IDN homoglyphs.

dnstwist (a maintained permutation engine, used here as a library, no network) makes the
typos, omissions, swaps, ASCII homoglyphs, hyphenations, bit flips and added words. On top of
it: the TLD swaps the issue lists (dnstwist only swaps to TLDs it is given) and single IDN
homoglyph substitutions (Cyrillic and Greek letters that look Latin), which dnstwist applies
only for some TLDs. Every name is normalised with :func:`probes.net.scope.normalise_host`
(IDNA 2008, UTS #46): one name, one form, whatever made it. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from probes.net.scope import normalise_host, unicode_host
from probes.watch.model import Candidate, Settings

# Letters that render like Latin ones (Cyrillic, Greek): the classic IDN homograph set.
IDN_GLYPHS: dict[str, tuple[str, ...]] = {
    "a": ("\u0430", "\u03b1"), "c": ("\u0441",), "e": ("\u0435",), "i": ("\u0456",), "j": ("\u0458",),
    "k": ("\u043a", "\u03ba"), "o": ("\u043e", "\u03bf"), "p": ("\u0440", "\u03c1"), "s": ("\u0455",),
    "x": ("\u0445",), "y": ("\u0443",), "h": ("\u04bb",), "b": ("\u044c",), "r": ("\u0433",),
}


def _split(domain: str, tlds: Iterable[str]) -> tuple[str, str]:
    """(registrable label(s), suffix): the longest listed suffix wins, else the last label."""
    for suffix in sorted((normalise_host(t) for t in tlds), key=len, reverse=True):
        if domain.endswith("." + suffix):
            return domain[: -len(suffix) - 1], suffix
    head, _, tail = domain.rpartition(".")
    return head, tail


def _valid(name: str) -> bool:
    labels = name.split(".")
    return len(name) <= 253 and len(labels) >= 2 and all(
        0 < len(label) <= 63 and not label.startswith("-") and not label.endswith("-")
        and all(ch.isalnum() or ch == "-" for ch in label) and label.isascii()
        for label in labels
    )


def candidates(domain: str, settings: Settings) -> tuple[Candidate, ...]:
    """Every lookalike name of ``domain`` worth a lookup, sorted, without the firm's own names."""
    import dnstwist

    own = normalise_host(domain)
    found: dict[str, str] = {}

    def add(raw: str, fuzzer: str) -> None:
        name = normalise_host(raw)
        if _valid(name) and name not in found:
            found[name] = fuzzer

    tld_words = [normalise_host(t) for t in settings.tlds]
    fuzzer = dnstwist.Fuzzer(own, dictionary=list(settings.words), tld_dictionary=tld_words)
    fuzzer.generate()
    for perm in fuzzer.domains:
        if perm.get("fuzzer") != "*original":
            add(str(perm["domain"]), str(perm["fuzzer"]))
    label, suffix = _split(own, settings.tlds)
    for tld in tld_words:
        add(f"{label}.{tld}", "tld-swap")
    base = label.rsplit(".", 1)[-1]
    prefix = label[: len(label) - len(base)]
    shown = unicode_host(base) or base
    for i, ch in enumerate(shown):
        for glyph in IDN_GLYPHS.get(ch, ()):
            add(f"{prefix}{shown[:i]}{glyph}{shown[i + 1:]}.{suffix}", "idn-homoglyph")
    mine = {normalise_host(d) for d in settings.domains} | {own}
    return tuple(
        Candidate(name=n, fuzzer=f, unicode=unicode_host(n))
        for n, f in sorted(found.items())
        if n not in mine
    )
