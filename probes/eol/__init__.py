"""End-of-life software: product banners (``banners.toml``) judged against ``eol.json``.

Shared by the http and ports probes; not a probe of its own.
"""
