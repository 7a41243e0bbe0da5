"""Prometheus metrics for ``posture run`` (``[metrics] listen``); prometheus_client is imported only when set."""
