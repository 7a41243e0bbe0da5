"""Keep out of a posture process what its libraries would load and posture never uses.

Imported first by the command line (:mod:`agent.cli`) and by the scan workers' fork server
(:mod:`agent.scanning.parallel`), before any library below is imported; importing it again
does nothing more.

- ``httpx._main``: httpx's ``__init__`` imports its own command line (click, rich, pygments:
  about 30 ms and 80 modules); posture never runs it. A ``None`` entry in ``sys.modules``
  makes that import fail with ImportError, and httpx then falls back to its stub ``main``.
  (dnspython's ``dns.query`` imports httpx too, so this matters even where posture's own
  HTTP client is not used.)
- pydantic plugins: pydantic looks its plugins up in every installed distribution's entry
  points when it builds a model (about 3 ms per process); posture uses none.
  ``PYDANTIC_DISABLE_PLUGINS`` is read at each model build, so it goes into the environment,
  and child processes inherit it: posture's own (scan workers: same wish) and the tools it
  runs (nmap, Chromium: they do not read it). A value the user set is kept.
"""

from __future__ import annotations

import os
import sys

sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
