"""Phishing and impersonation watch (issue 18, NSG-18.2): lookalike domains and mail spoofing, from DNS alone.

collect (:mod:`probes.watch.collect`) only sends DNS queries through the configured resolver;
everything else here is pure. No HTTP, TLS or other connection ever goes to a lookalike: it is
not the firm's asset.
"""
