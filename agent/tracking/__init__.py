"""Remediation tracking: deadlines and cadence from the config and the stored history.
"""
