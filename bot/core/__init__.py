"""The core: stdlib only; models, commands, the job service, the worker pool, the dispatcher,
and the ports the adapters plug into."""
