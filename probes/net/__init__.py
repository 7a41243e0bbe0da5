"""I/O at the edge shared by probes: DNS, pinned connections, the HTTP layer."""
