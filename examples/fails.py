# An uncaught exception: status `error`, with its type, message and a traceback of your frames.
# /job run {"items": [1, 2, 0]}


def invert(values):
    return [1 / v for v in values]


def main(items):
    return invert(items)
