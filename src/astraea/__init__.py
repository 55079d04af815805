"""Astraea: an IoT data platform compatible with Astarte's public contracts."""

__version__ = "0.1.0"
