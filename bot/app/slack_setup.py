"""What a half-made Slack configuration lacks, and where in the app's settings page each
missing value is found: the message the settings check gives (and so `scripts/start`)."""

from __future__ import annotations


def half_configured(bot_token: str, app_token: str, signing_secret: str) -> str | None:
    """What is missing when Slack is configured halfway, and where in the app's settings at
    api.slack.com each missing value is found; None when Slack is whole or left out."""
    given = {
        "SLACK_BOT_TOKEN": bot_token,
        "SLACK_APP_TOKEN": app_token,
        "SLACK_SIGNING_SECRET": signing_secret,
    }
    present = [name for name, value in given.items() if value]
    if not present or (bot_token and (app_token or signing_secret)):
        return None
    verb = "is" if len(present) == 1 else "are"
    head = f"Slack is half configured: {', '.join(present)} {verb} set"
    if not bot_token:
        missing = (
            "but SLACK_BOT_TOKEN is missing (Settings -> Install App -> Install to Workspace, "
            "then copy the Bot User OAuth Token, xoxb-...)"
        )
    else:
        missing = (
            "but neither SLACK_APP_TOKEN nor SLACK_SIGNING_SECRET is: set SLACK_APP_TOKEN for "
            "Socket Mode (Basic Information -> App-Level Tokens, scope connections:write), or "
            "SLACK_SIGNING_SECRET for HTTP mode (Basic Information -> Signing Secret)"
        )
    modes = (
        "Socket Mode needs SLACK_BOT_TOKEN and SLACK_APP_TOKEN (Socket Mode needs no signing "
        "secret); HTTP mode needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET; leave all three "
        "empty for the console"
    )
    return f"{head}, {missing}. {modes}."
