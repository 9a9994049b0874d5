# Long output: the first lines are shown inline, the whole output is attached as a file in Slack.
# /job run {"rows": 200}


def main(rows):
    for i in range(rows):
        print(f"row {i:4d}: {i * i:8d}")
    return {"rows": rows}
