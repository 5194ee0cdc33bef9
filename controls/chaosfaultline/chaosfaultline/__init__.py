"""Faultline's Chaos Toolkit control. The hooks live in :mod:`chaosfaultline.control`."""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
