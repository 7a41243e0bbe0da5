"""The ``http`` probe: redirects, security headers, cookies, version banners.

:mod:`probes.http.probe` collects, :mod:`probes.http.judge` judges.
"""
