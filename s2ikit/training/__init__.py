"""Training loops: speech-encoder pretraining (and, later, Fusion-S2iGan)."""
