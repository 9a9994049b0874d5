"""The local executor: jobs run on this machine, forked from the sandbox's zygote."""

from bot.executors.local.executor import LocalExecutor

__all__ = ["LocalExecutor"]
