"""Scheduling and the daemon: due scans as leased jobs, the evaluation cycle, quiet hours,
the dead-man alerts and sd_notify.
"""
