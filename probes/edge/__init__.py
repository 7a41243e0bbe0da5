"""The ``edge`` probe: WAF/CDN in front of a site, from signatures and an active block test.

:mod:`probes.edge.probe` collects, :mod:`probes.edge.judge` judges against ``signatures.toml``.
"""
