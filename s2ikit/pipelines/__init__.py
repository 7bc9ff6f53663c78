"""Pipelines: the preparation DAG (index -> speech -> features -> images -> shards -> finalize)."""
