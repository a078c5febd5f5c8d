"""Dagster jobs that are not asset materializations (operational remediation)."""
