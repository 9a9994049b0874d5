"""`python -m bot <command>`; see bot/terminal/cli.py."""

import sys

from bot.terminal.cli import main

if __name__ == "__main__":
    sys.exit(main())
