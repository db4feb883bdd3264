"""The metrics that model cards report, one function each."""
