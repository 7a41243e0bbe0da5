"""Probes: one module per probe, the contract, the registry and the check catalog."""
