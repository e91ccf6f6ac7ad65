"""The evaluate stage: a fine-tuned run against its base model (or another run) on the locked test split: generation,
task metrics with paired bootstrap intervals, forgetting, routing, code checks in a sandbox, the evaluation as a
supervised job, and the playground."""
