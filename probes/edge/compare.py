"""Comparing the active probe's attack response with its control (pure; no I/O).

A block page is recognised by comparison, whatever its status: the attack got
another page than the control (another status, a word set unlike the control's,
or a page far shorter) and that page speaks of blocking in words the control's
page does not use (``[block_page]`` words in ``probes/edge/signatures.toml``).
"""

from __future__ import annotations

import re

from probes.edge.signatures import BlockWords

# Below this similarity to the control's body (word sets, Jaccard) the attack got another page.
SIMILAR = 0.5
# An attack page this much shorter than the control's is another page even with similar words.
SHRUNK = 0.3
_BODY_SCAN = 256 * 1024
_TAG = re.compile(r"<(script|style)\b[^>]{0,500}>.*?</\1\s{0,4}>|<[^<>]{0,2000}>", re.IGNORECASE | re.DOTALL)
_WORD = re.compile(r"\w{2,}", re.UNICODE)


def page_text(body: str) -> str:
    """A page as read: markup, scripts and styles out."""
    return _TAG.sub(" ", body[:_BODY_SCAN])


def page_words(body: str) -> set[str]:
    """The words of a page as read, lower-cased."""
    return {w.lower() for w in _WORD.findall(page_text(body))}


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of two pages' word sets (1.0: same words; two empty pages are alike)."""
    wa, wb = page_words(a), page_words(b)
    if not wa and not wb:
        return 1.0
    return len(wa & wb) / len(wa | wb)


def other_block_page(
    control: tuple[int | None, str], attack: tuple[int | None, str], words: BlockWords | None
) -> str | None:
    """A page unlike the control's that speaks of blocking (as evidence text), or None.

    ``control`` and ``attack`` are (status, body) of the two responses.
    """
    if words is None:
        return None
    (c_status, c_body), (a_status, a_body) = control, attack
    sim = similarity(c_body, a_body)
    shrunk = len(a_body) < SHRUNK * len(c_body)
    if a_status == c_status and sim >= SIMILAR and not shrunk:
        return None
    new = sorted(words.found(page_text(a_body)) - words.found(page_text(c_body)))
    if not new:
        return None
    return (f"attack request: block page (status {c_status} -> {a_status}, "
            f"{len(a_body)} vs {len(c_body)} bytes, similarity {sim:.2f}; "
            f"words: {', '.join(new[:5])})")
