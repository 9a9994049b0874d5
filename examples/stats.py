# With a `main` function: it is called as main(**input) and its return value (JSON) is the
# result. /job run {"numbers": [3, 1, 4, 1, 5, 9, 2, 6]}


def main(numbers):
    ordered = sorted(numbers)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {
        "count": len(numbers),
        "sum": sum(numbers),
        "min": ordered[0],
        "max": ordered[-1],
        "median": median,
    }
