"""The ``tls`` probe: protocol versions, cipher suites, the certificate chain and its trust.

:mod:`probes.tls.probe` is the probe; ``suites.toml`` is its cipher-suite data.
"""
