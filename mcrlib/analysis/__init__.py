"""Analyses of finished runs: paired statistics, verdicts, tables, figures and the report."""
