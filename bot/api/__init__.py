"""The HTTP API for programs (a Flask blueprint): the same service, the same rules."""
