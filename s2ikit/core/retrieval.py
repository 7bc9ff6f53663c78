"""Retrieval metrics over a query x gallery similarity matrix.

recall_at_k: fraction of queries with at least one relevant item among the k most similar.
mean_average_precision: per query, the mean of precision@rank over the ranks of its relevant items;
averaged over queries (S2IGAN's mAP with relevant = same class).
"""

from __future__ import annotations

import torch


def _ranked_relevance(similarity: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    order = similarity.argsort(dim=1, descending=True, stable=True)
    return relevant.gather(1, order)


def recall_at_k(
    similarity: torch.Tensor, relevant: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10, 50)
) -> dict[int, float]:
    hits = _ranked_relevance(similarity, relevant)
    return {k: float(hits[:, :k].any(dim=1).float().mean()) for k in ks}


def mean_average_precision(similarity: torch.Tensor, relevant: torch.Tensor) -> float:
    hits = _ranked_relevance(similarity, relevant).float()
    ranks = torch.arange(1, hits.shape[1] + 1, dtype=torch.float64)
    precision = hits.double().cumsum(dim=1) / ranks
    n_relevant = hits.sum(dim=1)
    ap = (precision * hits).sum(dim=1) / n_relevant.clamp(min=1)
    return float(ap[n_relevant > 0].mean())


def cross_modal_retrieval(
    speech: torch.Tensor,
    speech_image: torch.Tensor,
    speech_class: torch.Tensor,
    image: torch.Tensor,
    image_class: torch.Tensor,
) -> dict[str, float]:
    """Speech->image and image->speech R@1/5/10/50 (relevant: own image/captions) and class mAP.

    speech (Q, D) unit vectors of captions; speech_image (Q,) index of each caption's image in `image` (N, D).
    """
    sim = speech @ image.T
    own = speech_image.unsqueeze(1) == torch.arange(image.shape[0]).unsqueeze(0)
    same_class = speech_class.unsqueeze(1) == image_class.unsqueeze(0)
    metrics = {}
    for k, v in recall_at_k(sim, own).items():
        metrics[f"s2i_R@{k}"] = v
    for k, v in recall_at_k(sim.T, own.T).items():
        metrics[f"i2s_R@{k}"] = v
    if bool((speech_class >= 0).all()):
        metrics["s2i_mAP"] = mean_average_precision(sim, same_class)
        metrics["i2s_mAP"] = mean_average_precision(sim.T, same_class.T)
    return metrics
