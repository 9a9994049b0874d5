"""jobbot: run a Python file with a JSON input as a job, from Slack or a console."""
