"""A Lambda handler with the job's defences off, for the attack test alone (never deployed):
the stand-in puts it in the task root beside the real one, which it calls."""

from sandbox.fresh import lambda_handler


def handler(event: object, context: object) -> dict:
    """The real handler, without its defences."""
    return lambda_handler.handler(event, context)
