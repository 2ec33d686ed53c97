"""Reporting: what a person reads of a run — plots (PNG, matplotlib's Agg backend) and text
tables. Nothing here trains; it reads results."""
