"""The train stage: the run config, recommendations (model, technique, hyper-parameters, memory) from the catalog and
the model in hand, the launch with its refusals, the trainer itself (TRL SFTTrainer), and a run's summary.

    python -m engine.train RUN_DIR [--resume]      (the trainer; engine/train/__main__.py)

Kept free of imports: the trainer's SIGTERM handler must be installed before anything heavy loads.
"""
