"""A Lambda handler with the job's defences off, for the attack test alone (never deployed):
the stand-in puts it in the task root beside the real one, which it calls without the job's
seccomp filter."""

from sandbox.fresh import lambda_handler


def handler(event: object, context: object) -> dict:
    """The real handler, without the job's seccomp filter."""
    return lambda_handler.handle(event, context, syscall_filter=False)
