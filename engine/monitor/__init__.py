"""The monitor stage, after models: production request logs in (masked, de-duplicated, stored by day), what each
model version does in production (requests, latency, errors, satisfaction, with intervals and guardrail alerts),
drift of production requests against the model's training data (PSI per feature), and the retraining candidate
built from production feedback when drift passes 0.20."""
