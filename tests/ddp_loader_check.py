"""Run under torchrun: each rank counts its train batches for one epoch and the test captions it sees."""

import json
import sys

import torch.distributed as dist

from s2ikit.config import LoaderConfig
from s2ikit.data.loader import make_loader

data_dir, out_prefix = sys.argv[1], sys.argv[2]
dist.init_process_group("gloo")
rank = dist.get_rank()
train = make_loader(data_dir, LoaderConfig(split="train", batch_size=2, num_workers=1))
train_batches = [b["key"] for b in train]
test = make_loader(data_dir, LoaderConfig(split="test", mode="test", batch_size=3))
test_items = [f"{k}/{int(c)}" for b in test for k, c in zip(b["key"], b["caption_index"])]
with open(f"{out_prefix}.{rank}.json", "w") as f:
    json.dump({"train": train_batches, "num_batches": train.num_batches, "test": test_items}, f)
dist.barrier()
dist.destroy_process_group()
