"""Training: one engine (engine.py) and two tasks, speech-encoder pretraining and Fusion-S2iGan."""
