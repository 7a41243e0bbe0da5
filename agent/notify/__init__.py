"""Notifications through Apprise: channels, grouped alerts with a delivery log, the weekly digest.

Apprise is imported only when a message is really sent or a URL masked, so commands
that notify no one never pay for it.
"""
