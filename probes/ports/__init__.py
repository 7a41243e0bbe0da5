"""The ``ports`` probe: an nmap TCP connect scan judged against the allowed ports.

:mod:`probes.ports.probe` collects, :mod:`probes.ports.judge` judges; ``ports.toml`` is its data.
"""
