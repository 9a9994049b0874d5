"""Integration tests of the local executor and fresh mode, on real child processes."""
