"""The fresh mode (AWS Lambda): one new interpreter per job, started by the Lambda handler."""
