"""The built-in lab of ``posture demo``: local sites, each showing one kind of finding.

Everything runs on 127.0.0.0/8 without root: generated certificates from a CA
of the lab's own (:mod:`agent.demo.certs`), a DNS server that knows only the
lab's names (:mod:`agent.demo.dns`), the sites themselves (:mod:`agent.demo.sites`,
:mod:`agent.demo.servers`, :mod:`agent.demo.pages`) and a sink for notifications
(:mod:`agent.demo.sink`); :mod:`agent.demo.lab` starts and stops them all.
Nothing here is imported by the scanner: only the demo command uses it.
"""
