"""Watching training: the progress bar (rate, ETA; silent off a terminal), TensorBoard events, the curves PNG."""

import io
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from s2ikit.evaluation.curves import COLOURS, PANEL_H, PANEL_W, Panel, draw_curves, loss_series, run_panels
from s2ikit.evaluation.report import markdown
from s2ikit.training.distributed import DistInfo
from s2ikit.training.engine import Engine, Schedule, Task
from s2ikit.training.monitor import RunMonitor
from s2ikit.utils.tensorboard_log import tensorboard_available

needs_tensorboard = pytest.mark.skipif(
    not tensorboard_available(), reason="tensorboard is not installed (pip install 's2ikit[tensorboard]')"
)


class Countdown(Task):
    """A one-parameter task whose loss falls by one each step; each step takes `seconds`."""

    kind, state_file = "gan-state", Path("checkpoints") / "countdown.pt"

    def __init__(self, seconds: float = 0.0):
        self.seconds, self.w = seconds, torch.zeros(1)

    def batches(self, epoch):
        return range(10)

    def train_step(self, batch, step):
        time.sleep(self.seconds)
        return {"loss": torch.tensor(100.0 - step)}

    def state(self):
        return {"w": self.w}

    def load_state(self, state):
        self.w = state["w"]


def engine(run_dir: Path, console: Console | None, steps: int = 20, log_every: int = 5) -> Engine:
    schedule = Schedule(steps_per_epoch=10, total_steps=steps, log_every=log_every, checkpoint_every=10)
    info = DistInfo(rank=0, world_size=1, device=torch.device("cpu"))
    e = Engine(run_dir, info, schedule, {"toy": {}}, "toy", log=lambda line: None)
    e.monitor = RunMonitor(run_dir, "toy", console=console)
    return e


def test_the_progress_bar_shows_rate_and_eta_on_a_terminal(tmp_path):
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=140, color_system=None)
    e = engine(tmp_path / "run", console)
    e.run(Countdown(seconds=0.02), e.resume(Countdown(), True))
    shown = screen.getvalue()
    assert "train toy" in shown and "20/20 steps" in shown
    assert re.search(r"\d+\.\d\d steps/s", shown), shown
    assert re.search(r"ETA \d+:\d\d:\d\d", shown), shown


def test_off_a_terminal_plain_lines_show_rate_and_eta(tmp_path):
    screen = io.StringIO()
    e = engine(tmp_path / "run", Console(file=screen))  # a file, as in CI logs or nohup
    e.run(Countdown(seconds=0.01), e.resume(Countdown(), True))
    lines = screen.getvalue().splitlines()
    assert len(lines) == 10 and "\x1b" not in screen.getvalue()  # one per 10%, no terminal codes
    figures = r"\d+\.\d\d steps/s \| ETA 0:00:\d\d \| elapsed 0:00:\d\d"
    assert re.fullmatch(r"train toy: 2/20 steps \(10%\) \| " + figures, lines[0]), lines[0]
    assert lines[-1].startswith("train toy: 20/20 steps (100%)")
    assert len((tmp_path / "run/metrics.jsonl").read_text().splitlines()) == 4  # the run itself is unchanged


def test_without_tensorboard_a_run_writes_no_events_and_still_trains(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now fails, as when not installed
    assert not tensorboard_available()
    e = engine(tmp_path / "run", Console(file=io.StringIO()))
    status = e.run(Countdown(), e.resume(Countdown(), True))
    assert status["reason"] == "schedule" and not (tmp_path / "run/tensorboard").exists()


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events, {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.skipif(
    not tensorboard_available(), reason="tensorboard is not installed (pip install 's2ikit[tensorboard]')"
)
def test_a_gan_run_writes_its_losses_and_sample_grids_as_tensorboard_events(gan_run):
    events, found = scalars(gan_run / "tensorboard")
    records = [json.loads(line) for line in (gan_run / "metrics.jsonl").read_text().splitlines()]
    for key in ("d_loss", "g_loss", "ma_gp", "g_damsm"):
        expected = [(r["step"], r[key]) for r in records]
        assert [s for s, _ in found[f"gan/{key}"]] == [1, 2]
        assert np.allclose([v for _, v in found[f"gan/{key}"]], [v for _, v in expected], rtol=1e-6)
    assert "gan/seconds" not in found and "gan/step" not in found
    (grid,) = events.Images("gan/samples")
    with Image.open(gan_run / "samples/step-0000002.png") as png:
        assert grid.step == 2 and (grid.width, grid.height) == png.size


class Killed(Exception):
    pass


class KilledAt(Countdown):
    def __init__(self, step: int):
        super().__init__()
        self.kill = step

    def train_step(self, batch, step):
        if step == self.kill:
            raise Killed
        return super().train_step(batch, step)


@pytest.mark.skipif(
    not tensorboard_available(), reason="tensorboard is not installed (pip install 's2ikit[tensorboard]')"
)
def test_a_resumed_run_replaces_the_events_after_its_checkpoint(tmp_path):
    def next_second():  # TensorBoard reads event files in name order, and names start with whole seconds
        time.sleep(1.05 - time.time() % 1)

    run = tmp_path / "run"
    first = engine(run, Console(file=io.StringIO()), steps=20, log_every=1)
    with pytest.raises(Killed):  # killed at step 13: logged up to 13, checkpoint at 10
        first.run(KilledAt(13), first.resume(Countdown(), True))
    next_second()
    again = engine(run, Console(file=io.StringIO()), steps=20, log_every=1)
    again.run(Countdown(), again.resume(Countdown(), True))
    _, found = scalars(run / "tensorboard")
    assert [s for s, _ in found["toy/loss"]] == list(range(1, 21))  # 11, 12, 13 once: the resumed run's
    next_second()
    restarted = engine(run, Console(file=io.StringIO()), steps=10, log_every=5)
    restarted.run(Countdown(), restarted.resume(Countdown(), False))  # --restart: the old curve is gone
    assert [s for s, _ in scalars(run / "tensorboard")[1]["toy/loss"]] == [5, 10]


def test_curves_skip_event_and_torn_lines_and_draw_each_statistic(tmp_path):
    lines = [
        {"step": 5, "epoch": 1, "d_loss": 2.0, "g_loss": 9.0, "seconds": 1.0},
        {"step": 10, "epoch": 1, "d_loss": 1.0, "g_loss": float("nan"), "seconds": 2.0},
        {"epoch": 1, "event": "stopped", "reason": "time_budget", "step": 10},
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + '\n{"step": 15, "d_lo')
    assert loss_series(tmp_path / "metrics.jsonl") == {"d_loss": [(5.0, 2.0), (10.0, 1.0)], "g_loss": [(5.0, 9.0)]}
    (tmp_path / "checkpoints").mkdir()
    selection = {"candidates": [{"step": 5, "accuracy": {"shape": 0.5, "colour": 0.9}},
                                {"step": 10, "accuracy": {"shape": 0.7, "colour": 0.8}}]}  # fmt: skip
    (tmp_path / "checkpoints/selection.json").write_text(json.dumps(selection))
    panels = run_panels(tmp_path)
    assert [p.title for p in panels] == ["d_loss", "g_loss", "judge accuracy (select, training captions)"]
    assert panels[-1].series == {"shape": [(5.0, 0.5), (10.0, 0.7)], "colour": [(5.0, 0.9), (10.0, 0.8)]}
    path = draw_curves(panels, tmp_path / "curves.png", columns=2)
    with Image.open(path) as image:
        assert image.size == (2 * PANEL_W, 2 * PANEL_H)


def test_a_falling_curve_is_drawn_falling(tmp_path):
    points = [(float(s), 10.0 - s) for s in range(10)]
    draw_curves([Panel("loss", {"loss": points})], tmp_path / "c.png")
    with Image.open(tmp_path / "c.png") as image:
        rgb = np.asarray(image.convert("RGB")).astype(int)
    colour = np.array([int(COLOURS[0][i : i + 2], 16) for i in (1, 3, 5)])
    ys, xs = np.nonzero(np.abs(rgb - colour).sum(axis=2) == 0)
    assert len(xs) > 100  # a line, not a dot
    left, right = ys[xs == xs.min()].mean(), ys[xs == xs.max()].mean()
    assert left < right - 100  # starts high (small y) and ends low


def test_the_report_shows_the_curves_and_names_the_fid_protocol():
    report = {"run": "r", "checkpoint": "c", "step": 2, "dataset": "shapes", "data": "d", "test_captions": 16,
              "generated_images": 16, "image_size": 32, "seconds": 1.0, "training": {}, "skipped": {}, "grids": [],
              "settings": {"images_per_caption": 1}, "curves": "curves.png",
              "metrics": {"fid": {"value": 50.0, "generated_images": 16, "real_images": 8}}}  # fmt: skip
    md = markdown(report, [])
    assert "## Training curves" in md and "![curves](curves.png)" in md
    assert "S2IGAN's protocol: one image per test caption (16 generated vs 8 real test images)" in md
    report["settings"]["images_per_caption"], report["metrics"]["fid"]["generated_images"] = 2, 32
    assert "neither S2IGAN's count" in markdown(report, [])
    report["metrics"]["fid"]["generated_images"] = 30_000
    assert "DF-GAN's count" in markdown(report, [])
    del report["curves"]
    assert "curves" not in markdown(report, [])
