"""Data preparation: the DAG index -> speech -> features -> images -> shards -> finalize, run in resumable units."""
