"""Content-addressed cache of synthesized speech: key = sha256(engine, voice and its data or weights, engine
version, text, prosody parameters).

Reruns, repeated sentences and other data sets that share sentences cost nothing. The folder can be moved:
point `--cache-dir` or $S2IKIT_CACHE_DIR at it. Entries are 16-bit FLAC written atomically.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from s2ikit.audio.codec import decode_flac, encode_flac
from s2ikit.tts.base import SynthesisParams
from s2ikit.utils.atomic import fingerprint, write_bytes


def default_cache_dir() -> Path:
    if os.environ.get("S2IKIT_CACHE_DIR"):
        return Path(os.environ["S2IKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "s2ikit"


# Controls added after caches were filled enter the key only when set away from their default, so entries
# made before they existed keep their keys (and stay free).
_LATER_CONTROLS = {"pitch": 1.0}


class SpeechCache:
    def __init__(self, root: str | Path):
        self.root = Path(root) / "tts"

    def key(self, voice_id: str, text: str, params: SynthesisParams) -> str:
        fields = dataclasses.asdict(params)
        for name, default in _LATER_CONTROLS.items():
            if fields[name] == default:
                del fields[name]
        return fingerprint({"voice": voice_id, "text": text, "params": fields})

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.flac"

    def get(self, key: str) -> tuple[np.ndarray, int] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return decode_flac(path.read_bytes())
        except Exception:  # a damaged entry is a miss, re-synthesized and overwritten
            return None

    def put(self, key: str, pcm: np.ndarray, sample_rate: int) -> None:
        # No fsync: thousands of small entries, and a damaged one is only a cache miss.
        write_bytes(self._path(key), encode_flac(pcm, sample_rate), durable=False)
