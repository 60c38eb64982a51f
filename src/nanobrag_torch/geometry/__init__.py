"""Detector, beam and coordinate conventions."""
