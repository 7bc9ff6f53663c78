"""Speech encoder (S2IGAN's speech embedding network, which Fusion-S2iGan follows, Sect. 5.1).

log-mel (B, T, 40) -> Conv1d(40->64, k6, s2) + BN -> Conv1d(64->128, k6, s2) + BN (no activation, as S2IGAN)
-> 2-layer BiGRU (hidden 512) over packed sequences -> self-attention pooling
alpha_t = softmax_t(W2 tanh(W1 h_t)) with per-dimension weights (1024 -> 128 -> 1024), padded frames masked
(S2IGAN leaves them in the softmax) -> L2-normalised 1024-d embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class AttentionPooling(nn.Module):
    """Per-dimension self-attention over time, ignoring padded steps."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.hidden = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, dim)
        nn.init.orthogonal_(self.hidden.weight)
        nn.init.orthogonal_(self.out.weight)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h (B, T, D), mask (B, T) True on real frames -> (B, D)."""
        scores = self.out(torch.tanh(self.hidden(h)))
        scores = scores.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        alpha = torch.softmax(scores.float(), dim=1).to(h.dtype)
        return (alpha * h).sum(dim=1)


class SpeechEncoder(nn.Module):
    def __init__(
        self,
        n_mels: int = 40,
        embed_dim: int = 1024,
        conv_channels: tuple[int, int] = (64, 128),
        kernel: int = 6,
        stride: int = 2,
        rnn_layers: int = 2,
        attention_hidden: int = 128,
        dropout: float = 0.0,
    ):
        super().__init__()
        if embed_dim % 2:
            raise ValueError("embed_dim must be even (two GRU directions)")
        self.kernel, self.stride = kernel, stride
        c1, c2 = conv_channels
        self.conv = nn.Sequential(
            nn.Conv1d(n_mels, c1, kernel, stride),
            nn.BatchNorm1d(c1),
            nn.Conv1d(c1, c2, kernel, stride),
            nn.BatchNorm1d(c2),
        )
        self.rnn = nn.GRU(c2, embed_dim // 2, rnn_layers, batch_first=True, bidirectional=True, dropout=dropout)
        self.pool = AttentionPooling(embed_dim, attention_hidden)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames left after the two unpadded convolutions: floor((L - k) / s) + 1, twice."""
        for _ in range(2):
            lengths = torch.div(lengths - self.kernel, self.stride, rounding_mode="floor") + 1
        return lengths

    @property
    def min_frames(self) -> int:
        return self.kernel + self.stride * (self.kernel - 1)

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """mel (B, T, n_mels) zero-padded, lengths (B,) -> (B, embed_dim) unit vectors."""
        if int(lengths.min()) < self.min_frames:
            raise ValueError(f"utterances need at least {self.min_frames} frames, got {int(lengths.min())}")
        x = self.conv(mel.transpose(1, 2)).transpose(1, 2)
        out_lengths = self.output_lengths(lengths.cpu())
        packed = pack_padded_sequence(x, out_lengths, batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True)
        mask = torch.arange(h.shape[1]).unsqueeze(0) < out_lengths.unsqueeze(1)
        return F.normalize(self.pool(h, mask.to(h.device)), dim=1)
