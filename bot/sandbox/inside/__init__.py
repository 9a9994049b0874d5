"""What runs inside the job's own process: the runner that executes the user's file."""
