"""posture: scheduled external-posture scanning for Taiwan's securities and futures firms."""

__version__ = "0.1.0"
