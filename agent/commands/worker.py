"""``posture worker``: run scan workers only (PostgreSQL), on any number of machines.

``posture run`` on the same database schedules; each worker takes queued scans
(``[workers] concurrency`` at once) until SIGTERM/SIGINT, then gives running scans a
few seconds to finish (the rest are stored as interrupted and queued again).
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="run scan workers for the scheduler of a shared PostgreSQL database")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.scheduling.fleet_scheduler import run_fleet

    return run_fleet(args, scheduler=False)
