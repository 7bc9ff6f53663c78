"""Evaluation: known answers for FID, IS, mAP and R@k; the judge; `evaluate` end to end (and a metric added as
one file, through `--metrics` and the preset key); `generate`."""

import json
import os
import re
from unittest import mock

import numpy as np
import pytest
import scipy.linalg
import soundfile as sf
import torch
from PIL import Image
from test_metrics import guide_metric, registry  # noqa: F401  (fixtures: the guide's example metric, added as one file)
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.config import EvaluateConfig
from s2ikit.core.export import export_generator
from s2ikit.core.images import to_uint8
from s2ikit.core.inference import load_bundle
from s2ikit.evaluation.evaluate import evaluate
from s2ikit.evaluation.report import read_summary
from s2ikit.metrics import fidelity
from s2ikit.metrics.judge import Judge
from s2ikit.models.classifier import ImageClassifier
from s2ikit.utils.errors import UserError
from s2ikit.utils.tensorboard_log import tensorboard_available

runner = CliRunner()
EVAL = EvaluateConfig(images_per_caption=2, batch_size=5, judge_attributes=("colour", "shape", "size"),
                      judge_epochs=2, judge_width=4, judge_batch_size=4, grid_captions=3)  # fmt: skip


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_fid_is_zero_for_a_set_against_itself_and_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 6)), rng.normal(0.5, 1.5, size=(250, 6)) @ rng.normal(size=(6, 6))
    same = fidelity.FrechetDistance(6)
    same.update(torch.from_numpy(a[:100]), real=True), same.update(torch.from_numpy(a[100:]), real=True)
    same.update(torch.from_numpy(a), real=False)
    assert same.compute() == pytest.approx(0.0, abs=1e-6)
    fid = fidelity.FrechetDistance(6)
    fid.update(torch.from_numpy(a), real=True), fid.update(torch.from_numpy(b), real=False)
    assert fid.compute() == pytest.approx(scipy_fid(a, b), rel=1e-6)
    # real statistics survive a save/load round trip (the cached `ref` file)
    restored = fidelity.FrechetDistance(6)
    restored.load_real_statistics(fid.real_statistics())
    restored.update(torch.from_numpy(b), real=False)
    assert restored.compute() == pytest.approx(fid.compute(), rel=1e-9)


def test_inception_score_known_answers():
    uniform = [torch.zeros(50, 10), torch.zeros(50, 10)]  # p(y|x) = p(y): no information
    assert fidelity.inception_score(uniform, splits=4)[0] == pytest.approx(1.0, abs=1e-6)
    confident = [torch.eye(5).repeat(8, 1) * 100.0]  # each image sure of one class, classes balanced
    mean, std = fidelity.inception_score(confident, splits=1)
    assert mean == pytest.approx(5.0, rel=1e-4) and np.isnan(std)  # one split: no spread to measure


@pytest.fixture(scope="module")
def fidelity_weights(tmp_path_factory):
    """A random-weight file in torch-fidelity's layout (the real one cannot be downloaded here)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with (
        mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}),
        mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None),
    ):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path_factory.mktemp("weights") / fidelity.WEIGHTS_FILE
    torch.save(net.state_dict(), path)
    return path


def test_fidelity_extractor_gives_pool_features_and_logits_and_refuses_code(fidelity_weights, tmp_path):
    pool, logits = fidelity.FidelityFeatures(fidelity_weights)(torch.rand(3, 3, 32, 32) * 2 - 1)
    assert pool.shape == (3, 2048) and logits.shape == (3, 1008)
    evil = tmp_path / "evil.pth"
    evil.write_bytes(_pickle_calling(tmp_path / "pwned"))
    with pytest.raises(UserError, match="it was not loaded"):
        fidelity.FidelityFeatures(evil)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(FileNotFoundError, match="weights-inception-2015-12-05"):
        with mock.patch("torch.hub.get_dir", return_value=str(tmp_path)):
            fidelity.find_fidelity_weights()


def _pickle_calling(marker) -> bytes:
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps(Evil())


def test_judge_scores_each_label_against_its_vocabulary():
    vocab = {"colour": ["blue", "red"], "class": [3, 7]}
    model = ImageClassifier({"colour": 2, "class": 2}, width=4)
    with torch.no_grad():  # a judge that always answers "red" and class 7
        for head in model.heads.values():
            head.weight.zero_(), head.bias.copy_(torch.tensor([0.0, 1.0]))
    judge = Judge(model, vocab, 32, {})
    labels = [{"colour": "red", "class": 7}, {"colour": "blue", "class": 7}, {"colour": "green", "class": 3}]
    hits = judge.correct(torch.zeros(3, 3, 64, 64), labels)
    assert hits["colour"].tolist() == [True, False, False]  # "green" was never seen: never right
    assert hits["class"].tolist() == [True, True, False]
    assert to_uint8(torch.full((1, 3, 8, 8), -1.0), 4).shape == (1, 3, 4, 4)


def test_evaluate_reports_every_metric_and_caches_its_references(reference, gan_run, fidelity_weights, tmp_path):
    from torchvision.models import inception_v3

    vision = tmp_path / "inception_v3_google-test.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), vision)
    logs = []
    report = evaluate(gan_run, EVAL, tmp_path / "eval", reference, str(fidelity_weights), str(vision), log=logs.append)
    assert report["test_captions"] == 16 and report["generated_images"] == 32
    measured = report["metrics"]
    accuracy = measured["class_accuracy"]["accuracy"]
    assert set(accuracy) == {"class", "colour", "shape", "size"}
    assert all(0.0 <= v <= 1.0 for v in accuracy.values())
    by_value = measured["class_accuracy"]["by_value"]  # which colours / shapes / sizes the generator gets wrong
    assert {h: set(v) for h, v in by_value.items()} == {
        "colour": {"blue", "red"}, "shape": {"circle", "square"}, "size": {"large", "small"}
    }  # fmt: skip
    for head, values in by_value.items():
        assert sum(r["images"] for r in values.values()) == 32
        weighted = sum(r["accuracy"] * r["images"] for r in values.values()) / 32
        assert weighted == pytest.approx(accuracy[head])
    judge = measured["class_accuracy"]["judge"]
    assert judge["images"] == 8 and judge["calibration_images"] == 8
    assert np.isfinite(measured["fid"]["value"]) and measured["fid"]["real_images"] == 8
    assert measured["fid"]["generated_images"] == 32 and measured["inception_score"]["images"] == 32
    s2igan = measured["s2igan_retrieval"]
    assert s2igan["queries"] == 8 and s2igan["gallery"] == 32
    assert (
        s2igan["mAP_queries"] == 8 and s2igan["mAP_gallery"] == 32
    )  # at most 2 per class; each class has 1 test image
    assert set(measured["encoder_retrieval"]["caption_to_generated"]) == {"R@1", "R@5", "R@10"}
    diversity = measured["diversity"]
    assert set(diversity["ratio"]) == {"pixels", "judge_features"} and diversity["captions"] == 16
    assert all(np.isfinite(v) and v >= 0 for v in diversity["ratio"].values())
    assert (tmp_path / "eval/diversity.png").is_file()
    assert report["skipped"] == {}
    assert list(measured) == list(EVAL.metrics)  # the preset key's metrics, in its order
    saved = json.loads((tmp_path / "eval/report.json").read_text())
    assert saved["metrics"]["class_accuracy"]["accuracy"] == accuracy
    # the headline: each metric's declared measurements (diversity's included), for TensorBoard and the card
    headline = saved["headline"]
    assert headline["diversity/ratio/pixels"] == diversity["ratio"]["pixels"]
    assert headline["class_accuracy/accuracy/colour"] == accuracy["colour"]
    assert headline["fid/value"] == measured["fid"]["value"] and "fid/real_images" not in headline
    assert {"inception_score/mean", "s2igan_retrieval/R@1", "encoder_retrieval/caption_to_generated/R@5"} <= set(
        headline
    )
    assert read_summary(tmp_path / "eval/report.json")["numbers"] == headline
    assert report["summary"]["fid"] == f"FID {measured['fid']['value']:.2f}"
    assert report["summary"]["diversity"].startswith("diversity (1.0: as varied as real images): pixels ")
    md = (tmp_path / "eval/report.md").read_text()
    assert "Class accuracy" in md and "FID" in md and "![grid](grid-00.png)" in md
    assert "By shape (generated images judged right, of how many): circle " in md
    assert re.search(r"\bin [0-9.]+ s\b", md) is None  # no wall time: two runs of one setting give one report
    with Image.open(tmp_path / "eval/grid-00.png") as grid:
        assert grid.width == 6 * 128  # (real + 2 generated) x 2 captions per row
    assert any("training the class-accuracy judge" in line for line in logs)
    assert len(list((reference / "eval").glob("fid-ref-shapes-test-*.pt"))) == 1

    # second run: judge and FID reference come from their caches; same numbers; no weights -> skipped, with why
    logs = []
    with mock.patch("torch.hub.get_dir", return_value=str(tmp_path / "empty-hub")):
        again = evaluate(gan_run, EVAL, tmp_path / "eval2", reference, log=logs.append)
    assert not any("training the class-accuracy judge" in line for line in logs)
    assert again["metrics"]["class_accuracy"]["accuracy"] == accuracy
    assert "fid" not in again["metrics"] and "weights-inception-2015-12-05" in again["skipped"]["fid"]
    assert "weights-inception-2015-12-05" in again["skipped"]["inception_score"]
    assert "inception_v3_google" in again["skipped"]["s2igan_retrieval"]
    assert "Skipped" in (tmp_path / "eval2/report.md").read_text()


@pytest.mark.usefixtures("guide_metric")
def test_a_metric_added_as_one_file_runs_by_flag_or_preset_key_into_every_output(gan_run, tmp_path):
    """The guide's example, dropped into s2ikit/metrics/ and nothing else edited: `--metrics` runs it (and only
    what it names, in its order) into report.json, report.md, the headline, TensorBoard, the model card and the
    printed summary; a preset's `evaluate.metrics` does the same."""
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(gan_run), "-o", str(out), "--metrics", "mean_colour,diversity"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "report.json").read_text())
    assert set(saved["metrics"]) == {"mean_colour", "diversity"} and saved["skipped"] == {}  # only those asked for
    gap = saved["metrics"]["mean_colour"]["gap"]
    assert 0 < gap < 2 and saved["metrics"]["mean_colour"]["images"] == 16
    assert saved["headline"]["mean_colour/gap"] == gap and "diversity/ratio/pixels" in saved["headline"]
    assert saved["settings"]["metrics"] == ["mean_colour", "diversity"]
    md = (out / "report.md").read_text()
    assert "## Mean colour against the real image" in md and f"Mean colour gap **{gap:.3f}**" in md
    assert md.index("## Mean colour") < md.index("## Diversity")
    printed = result.output.splitlines()
    assert f"mean colour gap {gap:.3f}" in printed and "class accuracy" not in result.output
    assert printed.index(f"mean colour gap {gap:.3f}") < [i for i, line in enumerate(printed)
                                                         if line.startswith("diversity (1.0")][0]  # fmt: skip
    # the model card (`s2ikit export` reads the report's summary)
    card = export_generator(gan_run, tmp_path / "export", read_summary(out / "report.json")) / "README.md"
    assert "| mean_colour/gap |" in card.read_text() and "| diversity/ratio/pixels |" in card.read_text()
    if tensorboard_available():
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(gan_run / "tensorboard"), size_guidance={"scalars": 0})
        events.Reload()
        assert [e.value for e in events.Scalars("eval/mean_colour/gap")][-1] == pytest.approx(gap)
        assert "eval/diversity/ratio/pixels" in events.Tags()["scalars"]
    # the preset key: a preset that extends the data set's and names the metrics
    preset = tmp_path / "mine.toml"
    preset.write_text('extends = "shapes"\n[evaluate]\nmetrics = ["mean_colour"]\n')
    result = runner.invoke(app, ["evaluate", str(gan_run), "-o", str(tmp_path / "eval2"), "--preset", str(preset)])
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "eval2/report.json").read_text())
    assert set(again["metrics"]) == {"mean_colour"} and again["metrics"]["mean_colour"]["gap"] == gap


def test_generate_from_a_wav_and_from_text(gan_run, tmp_path):
    wav = tmp_path / "speech.wav"
    t = np.arange(16000 * 2) / 16000  # 2 s at 16 kHz: resampled to the feature rate on the way in
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32), 16000)
    out = tmp_path / "grid.png"
    args = ["generate", str(gan_run), "--wav", str(wav), "--text", "a large green triangle", "-n", "3", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with Image.open(out) as grid:
        assert grid.size == (3 * 128, 2 * (128 + 37))  # one row of 3 images per input, captions beneath
    first = out.read_bytes()
    again = runner.invoke(app, args)  # an existing picture is replaced only when asked
    assert again.exit_code == 2 and "--overwrite" in again.output and out.read_bytes() == first
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0 and out.read_bytes() == first  # same pictures
    assert runner.invoke(app, [*args, "--seed", "1", "--overwrite"]).exit_code == 0 and out.read_bytes() != first
    # the checkpoint alone is enough (copied away from its run)
    alone = tmp_path / "copied.pt"
    alone.write_bytes((gan_run / "checkpoints/generator.pt").read_bytes())
    bundle = load_bundle(alone)
    assert bundle.generator.image_size == 32
    # paths inside are absolute, so evaluate and generate work from any folder
    assert os.path.isabs(bundle.info["data"]) and os.path.isabs(bundle.info["encoder_run"])


def test_generate_and_evaluate_errors_are_one_line(gan_run, tmp_path):
    result = runner.invoke(app, ["generate", str(gan_run)])
    assert result.exit_code == 2 and "--wav" in result.output and "Traceback" not in result.output
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00")
    result = runner.invoke(app, ["generate", str(gan_run), "--wav", str(bad)])
    assert result.exit_code == 2 and "bad.wav" in result.output
    result = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert result.exit_code == 2 and "generator.pt: missing" in result.output
    result = runner.invoke(app, ["evaluate", str(gan_run), "-o", str(tmp_path / "ev"), "--set",
                                 "evaluate.judge_augment=rotate"])  # fmt: skip
    assert (
        result.exit_code == 2
        and "--set evaluate.judge_augment: 'rotate' is not one of none|flip|dihedral" in result.output
    )
    assert not (tmp_path / "ev").exists()
