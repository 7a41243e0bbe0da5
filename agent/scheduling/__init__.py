"""Scheduling and the daemon: due scans as leased jobs, the evaluation cycle, the dead-man
alerts and sd_notify. It sits on top of scanning, tracking and notify; none of them imports it.
"""
