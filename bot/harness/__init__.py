"""The code that runs inside the sandbox; stdlib only, so it also ships alone to AWS Lambda."""
