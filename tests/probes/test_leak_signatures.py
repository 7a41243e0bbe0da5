"""The leak signature data file: valid, sourced, covering the required frameworks; bad files refused."""

from __future__ import annotations

import re

import pytest

from probes.catalog import load_catalog
from probes.leak.signatures import load_signatures, parse_signatures
from vocab import DataFileError

SIGS = load_signatures()

def test_signature_file_is_valid_and_every_entry_has_its_source() -> None:
    ids = [s.id for s in SIGS.signatures]
    assert len(ids) == len(set(ids))
    assert SIGS.version
    catalog = load_catalog()
    for sig in SIGS.signatures:
        assert sig.check.value in catalog, sig.id
        assert len(sig.source) > 20 and ("http" in sig.source or "/" in sig.source), sig.id
        assert sig.framework, sig.id


def test_every_required_framework_has_a_signature() -> None:
    # Whole words only: "go" must not be found inside "django", nor "java" inside "javascript".
    frameworks = " | ".join(s.framework for s in SIGS.signatures).lower()
    for name in ("django", "werkzeug", "laravel", "ignition", "whoops", "symfony", "asp.net", "iis", "spring",
                 "tomcat", "rails", "python", "java", ".net", "node.js", "php", "ruby", "go", "mysql",
                 "postgresql", "sql server", "oracle", "sqlite"):
        assert re.search(rf"(?<![a-z0-9.]){re.escape(name)}(?![a-z0-9])", frameworks), name


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[[signatures]]\nid='a'\ncheck='leak.debug_page'\nsource='x'\nhtml=['a']\nweird=1", "unknown key"),
        ("[[signatures]]\nid='a'\ncheck='leak.debug_page'\nhtml=['a']", "source"),
        ("[[signatures]]\nid='a'\ncheck='leak.nope'\nsource='x'\nhtml=['a']", "unknown check"),
        ("[[signatures]]\nid='a'\ncheck='leak.debug_page'\nsource='x'\nhtml=['(']", "bad regex"),
        ("[[signatures]]\nid='a'\ncheck='leak.debug_page'\nsource='x'", "no patterns"),
        ("[[signatures]]\nid='a'\ncheck='leak.debug_page'\nsource='x'\nhtml=['a']\nmin_matches=2", "min_matches"),
        ("[[signatures]]\nid='a'\ncheck='leak.version_banner'\nsource='x'\nhtml=['a/(?P<version>1)']",
         "product"),
        ("[[signatures]]\nid='a'\ncheck='leak.version_banner'\nsource='x'\nproduct='p'\nhtml=['a']", "version"),
        ("[[signatures]]\nid='a'\ncheck='leak.debug_page'\nsource='x'\nhtml=['a']\n"
         "[[signatures]]\nid='a'\ncheck='leak.debug_page'\nsource='x'\nhtml=['b']", "duplicate"),
    ],
)
def test_bad_signature_files_are_refused_with_the_reason(text: str, error: str) -> None:
    with pytest.raises(DataFileError, match=error):
        parse_signatures(text)
