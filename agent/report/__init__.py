"""The evidence report (``posture report``): what an auditor asks for at the half-yearly declaration.

:mod:`agent.report.gather` reads the store into the frozen dataclasses of
:mod:`agent.report.model`; the renderers (:mod:`agent.report.html`,
:mod:`agent.report.tabular`) only format them, so every format shows the same numbers.
"""
