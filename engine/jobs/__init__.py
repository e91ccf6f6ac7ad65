"""Jobs: the supervisor (a queue per device, start, reconcile, cancel, resume), the small monitor process each job
runs under, the job's event log (metrics.jsonl), heartbeat, checkpoints, and how a failure is classified. It knows
jobs, not what they train or evaluate: each stage hands it the command to run."""
