"""Auditing without trust: re-verify chains and recompute settlements from the bytes alone."""
