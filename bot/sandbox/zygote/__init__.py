"""The local mode: a warm, pre-imported zygote that forks one supervised job per request."""
