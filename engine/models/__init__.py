"""The models stage, after review and A/B: registered model versions (NAME-vMAJOR.MINOR.PATCH) with their lineage,
promotion on evidence (candidate -> staging -> production -> archived, every change audited), model cards, export
(adapter or merged weights), and serving through an existing engine (vLLM on CUDA, `transformers serve`
elsewhere) as a supervised job with a smoke test."""
