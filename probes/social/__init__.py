"""The ``social`` probe: links to social platforms, found by crawling and by clicking in Chromium.

:mod:`probes.social.probe` is the probe; ``platforms.toml`` is its platform data.
"""
