"""Evaluation: retrieval metrics (R@k, mAP), and later FID/IS, class accuracy and reports."""
