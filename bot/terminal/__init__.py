"""The terminal surfaces: the CLI, the console and the text rendering they share."""
