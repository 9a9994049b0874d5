"""Executors: where a job's code runs (this machine, or AWS Lambda)."""
