"""Scanning: resolve and pin each asset, run its probes, build the record.
"""
