"""The `voices` metric: the test captions spoken by voices the model never heard, one row per voice."""

import dataclasses
import shutil

import pytest

from s2ikit.config import EvaluateConfig
from s2ikit.evaluation.evaluate import evaluate
from s2ikit.utils.errors import UserError

EVAL = EvaluateConfig(batch_size=5, judge_attributes=("colour", "shape", "size"), judge_epochs=2, judge_width=4,
                      judge_batch_size=4, grid_captions=0, metrics=("voices",))  # fmt: skip
HELD_OUT = ("espeak-ng:en-us+f3", "flite:slt")

needs_engines = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("flite")), reason="espeak-ng and flite not installed (make voices)"
)


@needs_engines
def test_each_held_out_voice_gets_a_row_beside_the_training_voices(gan_run, reference, tmp_path, monkeypatch):
    monkeypatch.setenv("S2IKIT_CACHE_DIR", str(tmp_path / "cache"))
    config = dataclasses.replace(EVAL, held_out_voices=HELD_OUT)
    report = evaluate(gan_run, config, tmp_path / "eval", reference, log=lambda s: None)
    result = report["metrics"]["voices"]
    assert list(result["per_voice"]) == list(HELD_OUT)
    assert result["training_voices"] == ["piper:en_US-joe-medium"]
    assert result["captions"] == report["test_captions"]
    for accuracy in (result["training"], *result["per_voice"].values()):
        assert set(accuracy) == {"class", "colour", "shape", "size"}
        assert all(0.0 <= v <= 1.0 for v in accuracy.values())
    for head, mean in result["mean"].items():
        assert mean == pytest.approx(sum(v[head] for v in result["per_voice"].values()) / len(HELD_OUT))
    assert "voices/mean/class" in report["headline"]
    assert "voices/per_voice/flite:slt/colour" in report["headline"]
    text = (tmp_path / "eval" / "report.md").read_text()
    assert "| training voices |" in text and "| flite:slt |" in text and "held-out mean" in text
    # a second evaluation speaks nothing again: every utterance comes from the speech cache
    cached = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.flac")}
    assert 0 < len(cached) <= len(HELD_OUT) * report["test_captions"]
    again = evaluate(gan_run, config, tmp_path / "eval2", reference, log=lambda s: None)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.flac")} == cached
    assert again["metrics"]["voices"]["per_voice"] == result["per_voice"]


def test_a_training_voice_cannot_be_held_out(gan_run, reference, tmp_path):
    config = dataclasses.replace(EVAL, held_out_voices=("piper:en_US-joe-medium",))
    with pytest.raises(UserError, match=r"held_out_voices: piper:en_US-joe-medium spoke the training captions"):
        evaluate(gan_run, config, tmp_path / "eval", reference, log=lambda s: None)


def test_without_held_out_voices_the_metric_is_skipped_with_the_reason(gan_run, reference, tmp_path):
    logs = []
    report = evaluate(gan_run, EVAL, tmp_path / "eval", reference, log=logs.append)
    assert "voices" not in report["metrics"]
    assert "held_out_voices is empty" in report["skipped"]["voices"]
