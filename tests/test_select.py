"""`s2ikit select`: the best kept generator by the judge on training captions, and evaluate's record of it."""

import dataclasses
import json
import shutil
from pathlib import Path
from unittest import mock

import pytest
from conftest import GAN
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.config import EvaluateConfig
from s2ikit.core import checkpoints
from s2ikit.evaluation import select
from s2ikit.evaluation.evaluate import evaluate
from s2ikit.evaluation.select import criterion, select_generator
from s2ikit.training.gan import train_gan
from s2ikit.utils.errors import UserError

runner = CliRunner()
EVAL = EvaluateConfig(
    images_per_caption=1, judge_attributes=("colour", "shape", "size"), judge_epochs=2, judge_width=4, grid_captions=2
)


@pytest.fixture(scope="module")
def kept_run(reference, encoder_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("kept-run")
    config = dataclasses.replace(GAN, keep_generators=True, checkpoint_every=1, sample_every=100)
    train_gan(reference, encoder_run, run, config, max_steps=3, log=lambda s: None)
    return run


def test_select_copies_the_generator_the_judge_ranks_first_using_training_captions_only(kept_run, reference):
    kept = sorted((kept_run / "checkpoints/generators").glob("*.pt"))
    assert [p.name for p in kept] == ["step-0000001.pt", "step-0000002.pt", "step-0000003.pt"]
    splits = []
    real_loader = select.make_loader

    def recording_loader(data_dir, config):
        splits.append(config.split)
        return real_loader(data_dir, config)

    with mock.patch.object(select, "make_loader", recording_loader):
        selection = select_generator(kept_run, EVAL, reference, log=lambda s: None)
    assert splits == ["train"]  # generated images come from training captions only
    assert selection["captions"] == 16 and selection["split"] == "train" and selection["criterion"] == "class"
    ranked = selection["candidates"]
    assert [c["step"] for c in ranked] == [1, 2, 3]  # the last generator.pt is step 3's kept copy, judged once
    best = max(ranked, key=lambda c: (criterion(c["accuracy"]), c["step"]))
    assert selection["step"] == best["step"]
    chosen = kept_run / "checkpoints/best.pt"
    assert chosen.read_bytes() == (kept_run / "checkpoints/generators" / f"step-{best['step']:07d}.pt").read_bytes()
    assert json.loads((kept_run / "checkpoints/selection.json").read_text())["step"] == best["step"]

    # evaluate records the choice when it evaluates best.pt, and only then
    report = evaluate(chosen, EVAL, kept_run / "eval-best", reference, log=lambda s: None)
    assert report["step"] == best["step"] and report["selection"]["step"] == best["step"]
    assert "chosen by `s2ikit select`" in (kept_run / "eval-best/report.md").read_text()
    # an earlier kept generator's report still says how its run ended (the run's status.json)
    early = evaluate(kept_run / "checkpoints/generators/step-0000001.pt", EVAL, kept_run / "eval-1", reference,
                     log=lambda s: None)  # fmt: skip
    assert early["training"]["gan"] == {"reason": "schedule", "step": 3, "total_steps": 3, "exit_code": 0}
    assert "gan: ended by its schedule at step 3 of 3" in (kept_run / "eval-1/report.md").read_text()
    last = evaluate(kept_run, EVAL, kept_run / "eval-last", reference, log=lambda s: None)
    assert "selection" not in last and "chosen by" not in (kept_run / "eval-last/report.md").read_text()


def test_a_kept_generator_reports_into_its_runs_eval_and_a_copied_one_beside_itself(kept_run, reference, tmp_path):
    kept = kept_run / "checkpoints/generators/step-0000002.pt"
    report = evaluate(kept, EVAL, None, reference, log=lambda s: None)
    assert report["run"] == str(kept_run) and report["report"] == str(kept_run / "eval/report.md")
    assert report["curves"] == "curves.png" and (kept_run / "eval/curves.png").is_file()  # the run's losses
    exported = runner.invoke(app, ["export", str(kept), str(tmp_path / "model")])
    assert exported.exit_code == 0, exported.output
    assert "Not evaluated yet" not in (tmp_path / "model/README.md").read_text()  # the card has its numbers
    copy = tmp_path / "shared" / "generator.pt"
    copy.parent.mkdir()
    shutil.copyfile(kept, copy)
    alone = evaluate(copy, EVAL, None, reference, log=lambda s: None)
    assert alone["run"] is None and alone["curves"] is None and (copy.parent / "eval/report.md").is_file()
    assert f"# Evaluation of {copy}" in (copy.parent / "eval/report.md").read_text()


def test_the_run_of_a_checkpoint_is_named_as_the_user_named_it(tmp_path, monkeypatch):
    run = tmp_path / "runs" / "gan"
    (run / "checkpoints" / "generators").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert checkpoints.run_of("runs/gan/checkpoints/best.pt") == Path("runs/gan")
    assert checkpoints.run_of("runs/gan/checkpoints/generators/step-0000200.pt") == Path("runs/gan")
    monkeypatch.chdir(run / "checkpoints")
    assert checkpoints.run_of("best.pt") == run.resolve()  # too short to show the layout: resolved
    assert checkpoints.run_of(tmp_path / "generator.pt") is None  # outside a run's layout


def test_a_caption_limit_takes_every_kth_row_so_every_class_is_judged(kept_run, reference):
    from s2ikit.data.dataset_info import read_dataset

    def rows(batches):
        return [(k, c, i) for b in batches for k, c, i in zip(b["key"], b["class_id"].tolist(), b["caption_index"])]

    data = read_dataset(reference)
    everything, some = rows(select.training_captions(data, 4096)), rows(select.training_captions(data, 8))
    assert len(everything) == 16 and len(some) == 8
    assert some == everything[::2]  # shards are ordered by class: a prefix would judge half the classes
    assert len({c for _, c, _ in some}) == len({c for _, c, _ in everything}) == 8


def test_criterion_is_the_class_head_else_the_mean_of_the_attributes():
    assert criterion({"class": 0.25, "colour": 1.0}) == 0.25
    assert criterion({"colour": 1.0, "shape": 0.5}) == 0.75


def test_select_without_kept_generators_is_a_one_line_error(gan_run):
    result = runner.invoke(app, ["select", str(gan_run)])
    assert result.exit_code == 2 and "gan.keep_generators=true" in result.output
    assert "Traceback" not in result.output and not (gan_run / "checkpoints/best.pt").exists()


def test_a_damaged_kept_generator_is_skipped_and_reported_and_the_rest_are_judged(kept_run, reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(kept_run, run)
    for name in ("best.pt", "selection.json"):
        (run / "checkpoints" / name).unlink(missing_ok=True)
    damaged = run / "checkpoints/generators/step-0000002.pt"
    damaged.write_bytes(damaged.read_bytes()[:1000])  # a copy cut short
    lines = []
    selection = select_generator(run, EVAL, reference, log=lines.append)
    assert [c["step"] for c in selection["candidates"]] == [1, 3]
    assert [s["checkpoint"] for s in selection["skipped"]] == [str(damaged)]
    assert "not a readable s2ikit checkpoint" in selection["skipped"][0]["error"]
    assert any(line.startswith("skipped: ") and str(damaged) in line for line in lines)
    assert json.loads((run / "checkpoints/selection.json").read_text())["skipped"] == selection["skipped"]
    assert selection["step"] in (1, 3) and (run / "checkpoints/best.pt").is_file()
    # the newest one damaged too (generator.pt is step 3's copy): the data set is read from the next readable one
    for path in (run / "checkpoints/generators/step-0000003.pt", run / "checkpoints/generator.pt"):
        path.write_bytes(b"not a checkpoint")
    selection = select_generator(run, EVAL, reference, log=lambda s: None)
    assert [c["step"] for c in selection["candidates"]] == [1] and len(selection["skipped"]) == 3
    # every one damaged: one line
    (run / "checkpoints/generators/step-0000001.pt").write_bytes(b"")
    with pytest.raises(UserError, match=r"none of its 4 generators can be read"):
        select_generator(run, EVAL, reference, log=lambda s: None)


def test_evaluate_into_a_file_is_a_one_line_error(kept_run, reference, tmp_path):
    taken = tmp_path / "notes.txt"
    taken.write_text("keep")
    for out in (taken, taken / "eval"):
        result = runner.invoke(app, ["evaluate", str(kept_run), "--data", str(reference), "--out", str(out)])
        assert result.exit_code == 2 and "is a file; choose another --out folder" in result.output, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert taken.read_text() == "keep"
