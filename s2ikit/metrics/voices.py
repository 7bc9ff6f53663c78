"""`voices`: do the pictures still follow the words when a voice the model never heard speaks them?

Every test caption is spoken again by each voice of `evaluate.held_out_voices` (at its neutral rate and pitch),
turned into a log-mel with the data set's own recipe, and drawn once with the same z as the first image of the
shared evaluation pass; the class-accuracy judge (metrics/judge.py) then scores each voice. Beside them, the
same judge scores those first images, spoken by the training voices, so one table compares the two. The
held-out voices must not be among the voices the data set was prepared with (dataset.json's tts settings).
Synthesis goes through the speech cache, so a second evaluation speaks nothing again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from s2ikit.audio.codec import to_int16
from s2ikit.audio.speech import speech_log_mel
from s2ikit.core.inference import generate_images
from s2ikit.metrics.base import Generated, Metric, MetricSkipped, register
from s2ikit.metrics.class_accuracy import shared_judge
from s2ikit.metrics.judge import image_labels
from s2ikit.tts import SynthesisParams
from s2ikit.tts.cache import SpeechCache, default_cache_dir
from s2ikit.tts.voices import load_voice, parse_voice, voice_spec
from s2ikit.utils.errors import UserError
from s2ikit.utils.progress import track


def training_voices(tts) -> tuple[str, ...]:
    """The voices a data set's captions were spoken with (none for recorded speech)."""
    if tts is None:
        return ()
    return tuple(getattr(tts, "voices", ()) or ()) or (voice_spec(tts),)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


@register
class HeldOutVoices(Metric):
    name, title = "voices", "Held-out voices: the test captions spoken by voices never heard in training"
    headline = ("mean", "relative", "per_voice")

    def setup(self) -> None:
        voices = self.ctx.config.held_out_voices
        if not voices:
            raise MetricSkipped("evaluate.held_out_voices is empty (`s2ikit voices` lists the installed ones)")
        if not self.ctx.data.has_classes and not self.ctx.config.judge_attributes:
            raise MetricSkipped("the data set has no classes (and evaluate.judge_attributes is empty)")
        for spec in voices:
            parse_voice(spec)
        self.trained = training_voices(self.ctx.data.tts)
        heard = [v for v in voices if v in self.trained]
        if heard:
            raise UserError(
                f"evaluate.held_out_voices: {', '.join(heard)} spoke the training captions "
                f"({self.ctx.data.path}); a held-out voice must be one the model never heard"
            )
        base = self.ctx.data.tts
        try:
            self.backends = {spec: load_voice(spec, base) for spec in voices}
        except UserError as e:  # an engine not installed here: the other metrics still run
            raise MetricSkipped(str(e)) from None
        self.judge = shared_judge(self.ctx)
        self.cache = SpeechCache(default_cache_dir())
        self.captions: list[tuple[str, dict[str, Any]]] = []  # (text, judge labels), in caption-row order
        self.heard: dict[str, list[torch.Tensor]] = {}

    def update(self, generated: Generated) -> None:
        vocab = tuple(self.judge.vocab)
        batch = generated.batch
        labels = [image_labels(int(c), a, vocab) for c, a in zip(batch["class_id"], batch["attributes"])]
        self.captions += list(zip(batch["text"], labels))
        first = generated.images[:: generated.k]  # each caption's image 0: the z the held-out voices get too
        for head, ok in self.judge.correct(first, labels).items():
            self.heard.setdefault(head, []).append(ok)

    def _mel(self, spec: str, text: str) -> np.ndarray:
        backend, features = self.backends[spec], self.ctx.data.features
        params = SynthesisParams()
        key = self.cache.key(backend.voice_id, text, params)
        hit = self.cache.get(key)
        if hit is None:
            pcm = to_int16(backend.synthesize(text, params))
            self.cache.put(key, pcm, backend.sample_rate)
            hit = (pcm, backend.sample_rate)
        pcm, rate = hit
        return speech_log_mel(pcm, rate, features, f"{spec} speaking {text!r}")

    @torch.no_grad()
    def _score(self, spec: str) -> tuple[dict[str, float], int]:
        """Per judged head, the accuracy of the images drawn from `spec`'s speech; and the captions it failed."""
        bundle, hits, failed = self.ctx.bundle, {}, 0
        step = self.ctx.config.batch_size
        starts = range(0, len(self.captions), step)
        # a cold TTS cache speaks every caption: about a minute per voice on 2 cores, so a bar with ETA
        for start in track(starts, len(starts), f"voices: {spec}", unit="batches"):
            rows, mels, labels = [], [], []
            for row, (text, label) in enumerate(self.captions[start : start + step], start):
                try:
                    mels.append(self._mel(spec, text))
                except (UserError, ValueError, RuntimeError) as e:  # one caption a voice cannot speak
                    failed += 1
                    self.ctx.log(f"voices: {spec} could not speak {text!r}: {e}")
                    continue
                rows.append(row)
                labels.append(label)
            if not mels:
                continue
            lengths = torch.tensor([m.shape[0] for m in mels])
            padded = nn.utils.rnn.pad_sequence([torch.from_numpy(m.astype(np.float32)) for m in mels], True)
            speech = bundle.speech_encoder(padded.to(bundle.device), lengths.to(bundle.device)).float()
            # rows need not be contiguous once a caption failed: draw each with its own row's z
            images = torch.cat([generate_images(bundle, s[None], 1, self.ctx.config.seed, r)[:, 0] for s, r in
                                zip(speech, rows)])  # fmt: skip
            for head, ok in self.judge.correct(images, labels).items():
                hits.setdefault(head, []).append(ok)
        return {head: float(torch.cat(v).float().mean()) for head, v in hits.items()}, failed

    def compute(self) -> dict[str, Any]:
        training = {head: float(torch.cat(v).float().mean()) for head, v in self.heard.items()}
        per_voice, failed = {}, {}
        for spec in self.backends:
            self.ctx.log(f"voices: speaking {len(self.captions)} test captions as {spec}")
            per_voice[spec], failed[spec] = self._score(spec)
        heads = list(training)
        mean = {h: float(np.mean([v[h] for v in per_voice.values() if h in v])) for h in heads}
        worst = {h: float(min(v[h] for v in per_voice.values() if h in v)) for h in heads}
        relative = {h: mean[h] / training[h] if training[h] else 0.0 for h in heads}
        worst_relative = {h: worst[h] / training[h] if training[h] else 0.0 for h in heads}
        return {
            "training_voices": list(self.trained),
            "training": training,
            "per_voice": per_voice,
            "mean": mean,
            "relative": relative,
            "worst_relative": worst_relative,
            "captions": len(self.captions),
            "failed": failed,
        }

    def summary(self, result: dict[str, Any]) -> str:
        mean, training = result["mean"], result["training"]
        head = "class" if "class" in mean else next(iter(mean))
        return (
            f"held-out voices ({len(result['per_voice'])}): {head} {_pct(mean[head])} on average, "
            f"{_pct(training[head])} for the training voices ({100 * result['relative'][head]:.0f}%)"
        )

    def section(self, result: dict[str, Any]) -> list[str]:
        heads = list(result["training"])
        lines = [
            f"Each of the {result['captions']} test captions spoken again by voices the model never heard, one "
            "image each (the z of the first image above), judged by the class-accuracy judge. Training voices: "
            f"{', '.join(result['training_voices'])}.",
            "",
            "| voice | " + " | ".join(heads) + " |",
            "|---|" + "---|" * len(heads),
            "| training voices | " + " | ".join(_pct(result["training"][h]) for h in heads) + " |",
        ]
        for spec, accuracy in result["per_voice"].items():
            note = f" ({result['failed'][spec]} captions not spoken)" if result["failed"].get(spec) else ""
            lines.append(f"| {spec}{note} | " + " | ".join(_pct(accuracy.get(h, 0.0)) for h in heads) + " |")
        lines.append("| **held-out mean** | " + " | ".join(_pct(result["mean"][h]) for h in heads) + " |")
        lines += [
            "",
            "Held-out mean against the training voices: "
            + ", ".join(f"{h} {100 * result['relative'][h]:.0f}%" for h in heads)
            + "; worst voice: "
            + ", ".join(f"{h} {100 * result['worst_relative'][h]:.0f}%" for h in heads)
            + ".",
        ]
        return lines
