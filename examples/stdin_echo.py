# The raw JSON input is also on stdin. /job run {"name": "Ada"}
import json
import sys

data = json.load(sys.stdin)
print(f"Hello, {data.get('name', 'world')}! You sent {len(data)} key(s).")
