# The classic style: input keys are global variables, and the result is what you print.
# /job run {"a": 5, "b": 3}   ->   8


def soma(a, b):
    return a + b


print(soma(a, b))  # noqa: F821 - `a` and `b` come from the JSON input
