"""`syncd run`: the daemon.

``service`` is the process's life (preflight, READY, signals, reload, stop, the metrics
endpoint); ``ticks`` the scheduled work it runs on one APScheduler scheduler (per-pipeline
ticks, leases, housekeeping, notifications); ``sharing`` how daemons sharing a state store split
the pipelines; ``metrics`` and ``systemd`` what it tells Prometheus and systemd. "Job" in syncd
means a Zoho bulk job; what the scheduler runs is called a tick here.
"""
