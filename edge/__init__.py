"""Yellowhammer dialect monitor: the edge (Raspberry Pi) runtime."""

__version__ = "0.1.0"
