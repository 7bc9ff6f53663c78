"""How well a trained speech encoder hears voices it never heard: an encoder-only proxy of the `voices` metric.

Every test caption of a prepared data set is spoken again by each voice named on the command line; each
utterance is embedded by the encoder run's selected speech encoder and given the class of the nearest class
centroid of the training utterances' embeddings (embeddings.h5, written by train-encoder). The same rule on the
shards' own test utterances (the training voices) gives the row to compare with. Prints a Markdown table of
class, colour, shape and size accuracy per voice.

A voice may carry a channel, VOICE@CHANNEL, applied to its audio before the log-mel: `telephone` (a 4th-order
Butterworth band-pass, 300-3400 Hz), `tilt` (pre-emphasis, +6 dB per octave: a bright microphone) or `room`
(a synthetic room: the direct sound, then 2 ms later a tail of seeded noise decaying by 60 dB in 0.4 s, whose
energy is 3 dB below the direct sound's).

Usage: python docs/experiments/voices_proxy.py DATA ENCODER_RUN VOICE[@CHANNEL] [VOICE[@CHANNEL] ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import numpy as np
import torch

from s2ikit.audio.codec import to_int16
from s2ikit.audio.speech import speech_log_mel
from s2ikit.core.factories import load_encoders
from s2ikit.core.inference import embed_speech
from s2ikit.data.dataset_info import read_dataset
from s2ikit.data.loader import shard_list
from s2ikit.data.shards import read_shard
from s2ikit.tts import SynthesisParams
from s2ikit.tts.cache import SpeechCache, default_cache_dir
from s2ikit.tts.voices import load_voice


def test_captions(data: Path) -> list[tuple[str, int, str]]:
    urls, _ = shard_list(data, "test")
    rows = []
    for url in urls:
        for sample in read_shard(url):
            meta = json.loads(sample["json"])
            rows += [(meta["key"], meta["class_id"], c["index"], c["text"]) for c in meta["captions"]]
    return rows


ROOM_DRR_DB = 3.0  # direct-to-reverberant ratio: a person about half a metre from a laptop's microphone


def channel(audio: np.ndarray, rate: int, name: str) -> np.ndarray:
    """`audio` through a telephone band, a bright microphone or a room (see the module docstring)."""
    from scipy import signal

    if name == "telephone":
        sos = signal.butter(4, [300, 3400], btype="bandpass", fs=rate, output="sos")
        out = signal.sosfilt(sos, audio)
    elif name == "tilt":
        out = signal.lfilter([1.0, -0.97], [1.0], audio)
    elif name == "room":
        t = np.arange(int(0.4 * rate)) / rate
        tail = np.random.default_rng(0).standard_normal(t.size) * np.exp(-6.9 * t / 0.4)  # -60 dB at 0.4 s
        tail *= np.sqrt(10 ** (-ROOM_DRR_DB / 10) / np.sum(tail**2))  # the direct sound's energy is 1
        impulse = np.concatenate([[1.0], np.zeros(int(0.002 * rate)), tail])
        out = signal.fftconvolve(audio, impulse)[: audio.size + impulse.size // 2]
    else:
        raise SystemExit(f"unknown channel {name!r}: telephone, tilt or room")
    return (out / max(1e-9, np.abs(out).max()) * 0.9).astype(np.float32)


def main(data: Path, run: Path, voices: list[str]) -> None:
    torch.set_num_threads(2)
    info = read_dataset(data)
    features, tts = info.features, info.tts
    enc, _ = load_encoders(run)
    with h5py.File(run / "embeddings.h5", "r") as h5:
        train = torch.from_numpy(h5["train/embeddings"][:])
        train_cls = torch.from_numpy(h5["train/class_ids"][:])
        test = dict(zip([k.decode() for k in h5["test/keys"][:]], torch.from_numpy(h5["test/embeddings"][:])))
    classes = sorted(set(train_cls.tolist()))
    centroids = torch.nn.functional.normalize(torch.stack([train[train_cls == c].mean(0) for c in classes]), dim=1)
    names = json.loads((data / "dataset.json").read_text()).get("classes") or {}
    rows = test_captions(data)

    def attrs(class_id: int) -> tuple[str, ...]:
        name = names[class_id] if isinstance(names, list) else names.get(str(class_id), str(class_id))
        return tuple(str(name).split("_")) if "_" in str(name) else (str(name),)

    def score(embeddings: torch.Tensor, truth: list[int]) -> dict[str, float]:
        pred = [classes[i] for i in (torch.nn.functional.normalize(embeddings, dim=1) @ centroids.T).argmax(1)]
        out = {"class": float(np.mean([p == t for p, t in zip(pred, truth)]))}
        parts = [(attrs(p), attrs(t)) for p, t in zip(pred, truth)]
        if all(len(a) == 3 and len(b) == 3 for a, b in parts):
            for i, head in enumerate(("size", "colour", "shape")):
                out[head] = float(np.mean([a[i] == b[i] for a, b in parts]))
        return out

    truth = [c for _, c, _, _ in rows]
    results = {"training voices": score(torch.stack([test[f"{k}/{i}"] for k, _, i, _ in rows]), truth)}
    cache = SpeechCache(default_cache_dir())
    for named in voices:
        spec, _, through = named.partition("@")
        voice, mels = load_voice(spec, tts), []
        for _, _, _, text in rows:
            key = cache.key(voice.voice_id, text, SynthesisParams())
            hit = cache.get(key)
            if hit is None:
                pcm = to_int16(voice.synthesize(text, SynthesisParams()))
                cache.put(key, pcm, voice.sample_rate)
                hit = (pcm, voice.sample_rate)
            pcm = to_int16(channel(hit[0] / 32767.0, hit[1], through)) if through else hit[0]
            mels.append(speech_log_mel(pcm, hit[1], features, f"{named}: {text!r}"))
        emb = torch.cat(
            [embed_speech(enc.speech, mels[i : i + 64], torch.device("cpu")) for i in range(0, len(mels), 64)]
        )
        results[named] = score(emb, truth)
    heads = list(results["training voices"])
    print("| voice | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(heads))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{100 * r.get(h, 0):.1f}" for h in heads) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])
