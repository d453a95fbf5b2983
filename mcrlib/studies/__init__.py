"""Section studies: turn a params.yaml section into runs and a table of their results."""
