"""Scanning: resolve and pin each asset, run its probes, build the record; the scan service
(:mod:`agent.scanning.service`) that ``posture scan``, ``posture demo``, ``run --once`` and
the daemon share, and the quiet-hours policy that holds active probes back.
"""
