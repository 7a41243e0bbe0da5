"""Schedules: pure functions of stored history and a clock (cadence, deadlines, quiet hours, digest timing)."""
