"""Unit tests of the sandbox harness (in-process where that makes sense)."""
