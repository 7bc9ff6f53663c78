"""Data: sample records, data set sources, WebDataset shards and the streaming loader."""
