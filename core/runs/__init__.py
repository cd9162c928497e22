"""Runs: the launcher, the run folder's files, process identity and signals, and atomic folder publication."""
