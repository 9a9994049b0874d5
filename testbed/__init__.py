"""The loopback test bed tests/ and bench/ share: Slack and Lambda stand-ins, signed Slack
requests, and drivers of the real bot processes."""
