"""The ``leak`` probe: harmless provocations, responses judged for debug pages and stack traces.

:mod:`probes.leak.probe` collects, :mod:`probes.leak.judge` judges against ``signatures.toml``.
"""
