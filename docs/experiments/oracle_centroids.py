"""The oracle condition of shapes-gan-oracle-and-symmetric-g.md: each class's centroid of its training captions'
speech embeddings, saved as a (classes, D) tensor for S2I_ORACLE, and how tight the classes are.

    python docs/experiments/oracle_centroids.py ENCODER_RUN DATA_DIR OUT.pt
"""

import argparse
from pathlib import Path

import torch

from s2ikit.core.embeddings import embed_split
from s2ikit.core.factories import load_encoders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("encoder_run", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    encoders, _ = load_encoders(args.encoder_run)
    train = embed_split(encoders, args.data, "train", 64, torch.device("cpu"))
    n = int(train.class_ids.max()) + 1
    members = [train.speech[train.class_ids == k] for k in range(n)]
    centroids = torch.stack([m.mean(0) for m in members])
    within = torch.stack([(m - c).norm(dim=1).mean() for m, c in zip(members, centroids)]).mean()
    between = torch.cdist(centroids, centroids).sum() / (n * (n - 1))
    print(f"mean norm {train.speech.norm(dim=1).mean():.2f}; caption to its class centroid {within:.2f}; "
          f"between centroids {between:.2f}")  # fmt: skip
    torch.save(centroids, args.out)


if __name__ == "__main__":
    main()
