"""The sandbox: stdlib only and importing nothing from bot, so its Lambda half ships alone.

The pieces both modes share sit here; `inside/` runs in the job's own process, `zygote/` is the
local warm-template mode and `fresh/` the one-interpreter-per-job mode of AWS Lambda.
"""
