"""Every random stream of a run, derived by hashing (seed, stream name, indices): no two streams can coincide.

A stream is named for what it draws (`gan/z`, `gan/augment`, `eval/z`, ...) and indexed by what makes each draw
new (the step, the epoch, a caption row). Hand-picked multipliers would let two streams meet (at seed 0,
`seed * a + step` is the same number for every stream); a hash never does, and a run stays a pure function of
(seed, step), so resume needs no RNG state for these streams.
"""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, stream: str, *index: int | str) -> int:
    """A 63-bit seed for `stream` at `index`, the same on every machine and Python version. An index is a
    number (a step, a row) or a name (a sample's key, a file): whatever makes the draw its own."""
    text = "/".join([str(int(seed)), stream, *(i if isinstance(i, str) else str(int(i)) for i in index)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
