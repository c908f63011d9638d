"""Dagster definitions for vast-pipeline: thin wrappers over `pipeline/` (see definitions.py)."""
