# Past the time limit (10 s by default) the job is stopped: status `timeout`. What was printed
# before is kept. /job run {"seconds": 30}
import time


def main(seconds):
    for i in range(seconds):
        print(f"tick {i}")
        time.sleep(1)
    return "finished"
