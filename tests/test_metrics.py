"""The metric registry (discovery, plug-ins, names, headlines) and the diversity metric's known answers."""

import re
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch
from torch import nn

import s2ikit.metrics
from s2ikit.config import EvaluateConfig
from s2ikit.core.inference import GeneratorBundle
from s2ikit.evaluation.report import headline_numbers
from s2ikit.metrics import REGISTRY, Context, Generated, Metric, MetricSkipped, build_metrics, check_names, measure
from s2ikit.metrics.diversity import Diversity, mean_pairwise_distance
from s2ikit.utils.errors import UserError

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "adding-a-metric.md"
BUILT_IN = ("class_accuracy", "diversity", "fid", "inception_score", "s2igan_retrieval", "encoder_retrieval")


def guide_example() -> str:
    """The complete example module of docs/adding-a-metric.md, as printed there."""
    text = GUIDE.read_text()
    return re.search(r"`s2ikit/metrics/mean_colour\.py`:\n\n```python\n(.*?)```", text, re.S).group(1)


@pytest.fixture
def registry():
    """The registry as it is, restored afterwards (with the modules a test added to the package)."""
    saved, modules = dict(REGISTRY), set(sys.modules)
    yield REGISTRY
    REGISTRY.clear()
    REGISTRY.update(saved)
    for name in set(sys.modules) - modules:
        if name.startswith("s2ikit.metrics.") or name.startswith("s2ikit_plugin_"):
            del sys.modules[name]
            vars(s2ikit.metrics).pop(name.rpartition(".")[2], None)


@pytest.fixture
def guide_metric(registry, tmp_path, monkeypatch):
    """The guide's example dropped into the metrics package's folder as one new file, nothing else edited."""
    folder = tmp_path / "more-metrics"
    folder.mkdir()
    (folder / "mean_colour.py").write_text(guide_example())
    monkeypatch.setattr(s2ikit.metrics, "__path__", [*s2ikit.metrics.__path__, str(folder)])
    s2ikit.metrics._import_modules()  # what importing the package does
    return REGISTRY["mean_colour"]


def test_mean_pairwise_distance_known_answer():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    assert mean_pairwise_distance(x) == pytest.approx((5 + 0 + 5) / 3)


class _Toy(nn.Module):
    """A 4 px generator: an image that is the speech embedding's first value, plus z when `uses_z`."""

    def __init__(self, uses_z: bool):
        super().__init__()
        self.uses_z, self.z_dim, self.image_size = uses_z, 3, 4
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, z, speech):
        base = speech[:, :1, None, None].expand(-1, 3, 4, 4)
        return base + (z[:, :1, None, None] if self.uses_z else 0) + self.w


class _Data:
    def __init__(self):
        self.has_classes, self.class_ids, self.classes = True, (0, 1), ("a", "b")


def _batches():
    torch.manual_seed(0)
    for start in (0, 4):
        yield {
            "key": [f"k{start + i}" for i in range(4)], "class_id": torch.tensor([0, 0, 1, 1]),
            "text": ["a", "a", "b", "b"], "image": torch.rand(4, 3, 4, 4) * 2 - 1,
            "mel": torch.zeros(4, 2, 1), "mel_lengths": torch.ones(4, dtype=torch.long),
        }  # fmt: skip


def _diversity(uses_z: bool) -> dict:
    bundle = GeneratorBundle(_Toy(uses_z), lambda mel, lengths: torch.randn(len(lengths), 2), None, None, None, {})
    config = EvaluateConfig(diversity_images=4, judge_attributes=())
    ctx = Context(bundle, _Data(), config, torch.device("cpu"), log=lambda s: None)
    ctx.shared["judge"] = None  # pixels only: no judge needed for this check
    metric = Diversity(ctx)
    metric.setup()
    metric.judge = None
    measure(bundle, _batches(), [metric], 1, seed=0)
    return metric.compute()


def test_a_generator_that_ignores_z_has_no_diversity_and_one_that_uses_it_has_some():
    assert _diversity(uses_z=False)["ratio"]["pixels"] == 0.0
    varied = _diversity(uses_z=True)
    assert varied["ratio"]["pixels"] > 0.1 and set(varied["per_class"]) == {"a", "b"}


def test_registry_names_every_metric_and_skips_with_the_reason():
    assert list(REGISTRY)[: len(BUILT_IN)] == list(BUILT_IN)  # every module, in alphabetical order
    assert EvaluateConfig().metrics == BUILT_IN  # what evaluate runs unless told otherwise

    class Never(Metric):
        name = "never"

        def setup(self):
            raise MetricSkipped("needs something this machine lacks")

    REGISTRY["never"] = Never
    try:
        logs = []
        ctx = Context(None, None, EvaluateConfig(), torch.device("cpu"), log=logs.append)
        metrics, skipped = build_metrics(["never"], ctx)
        assert metrics == {} and skipped == {"never": "needs something this machine lacks"}
        assert logs == ["skipping never: needs something this machine lacks"]
        with pytest.raises(UserError, match="unknown metric 'nope'"):
            build_metrics(["nope"], ctx)
    finally:
        del REGISTRY["never"]


def test_unknown_or_repeated_names_are_one_line_naming_where_they_were_set():
    assert check_names(["fid", "diversity"], "--metrics") == ("fid", "diversity")
    with pytest.raises(UserError) as e:
        check_names(["fid", "bogus"], "--metrics")
    known = ", ".join(sorted(REGISTRY))
    assert str(e.value) == f"--metrics: unknown metric 'bogus' (known: {known})" and "\n" not in str(e.value)
    assert "class_accuracy, diversity, encoder_retrieval, fid" in known
    with pytest.raises(UserError, match=r"^p.toml \[evaluate\].metrics: metric 'fid' is named twice$"):
        check_names(["fid", "fid"], "p.toml [evaluate].metrics")


def test_headline_flattens_nested_parts_of_each_metric_that_ran():
    metrics = {
        "class_accuracy": {"accuracy": {"class": 0.5, "colour": 1.0}, "images": 8, "judge": {"images": 8}},
        "diversity": {"ratio": {"pixels": 0.25}, "captions": 4, "per_class": {"a": {"pixels": 0.1}}},
        "fid": {"value": 12.0, "real_images": 8},
        "someone_elses": {"value": 1.0},  # a plug-in not installed here: no known headline, left out
    }
    assert headline_numbers(metrics) == {
        "class_accuracy/accuracy/class": 0.5, "class_accuracy/accuracy/colour": 1.0,
        "diversity/ratio/pixels": 0.25, "fid/value": 12.0,
    }  # fmt: skip


def test_a_module_dropped_into_the_package_is_a_metric_with_no_other_edit(guide_metric, registry):
    assert guide_metric.name == "mean_colour" and guide_metric.__module__ == "s2ikit.metrics.mean_colour"
    assert check_names(["mean_colour"], "--metrics") == ("mean_colour",)
    bundle = GeneratorBundle(_Toy(False), lambda mel, lengths: mel[:, 0, :].expand(-1, 2), None, None, None, {})
    ctx = Context(bundle, _Data(), EvaluateConfig(), torch.device("cpu"), log=lambda s: None)
    active, _ = build_metrics(["mean_colour"], ctx)
    batch = {"key": ["a", "b"], "class_id": torch.tensor([0, 1]), "text": ["a", "b"],
             "image": torch.stack([torch.full((3, 4, 4), 0.5), torch.full((3, 4, 4), -1.0)]),
             "mel": torch.zeros(2, 2, 1), "mel_lengths": torch.ones(2, dtype=torch.long)}  # fmt: skip
    measure(bundle, [batch], active.values(), 2, seed=0)  # the toy draws every image at 0: gaps 0.5 and 1.0
    result = active["mean_colour"].compute()
    assert result == {"gap": pytest.approx(0.75), "images": 4}
    assert headline_numbers({"mean_colour": result}) == {"mean_colour/gap": pytest.approx(0.75)}
    assert active["mean_colour"].summary(result) == "mean colour gap 0.750"
    with pytest.raises(TypeError, match="already registered"):  # another module may not take its name

        class Impostor(Metric):
            name = "mean_colour"

        s2ikit.metrics.register(Impostor)


def test_an_installed_package_registers_through_the_entry_point_group(registry, tmp_path, monkeypatch):
    (tmp_path / "s2ikit_plugin_colour.py").write_text(guide_example())
    monkeypatch.syspath_prepend(str(tmp_path))
    found = [EntryPoint("mean_colour", "s2ikit_plugin_colour:MeanColour", "s2ikit.metrics")]
    monkeypatch.setattr(s2ikit.metrics, "entry_points", lambda group: found if group == "s2ikit.metrics" else [])
    s2ikit.metrics._load_plugins()
    assert REGISTRY["mean_colour"].__module__ == "s2ikit_plugin_colour"
    found[:] = [EntryPoint("broken", "s2ikit_plugin_missing", "s2ikit.metrics")]
    with pytest.raises(UserError, match=r"^metric plug-in 'broken' \(s2ikit_plugin_missing\): cannot be loaded: No "):
        s2ikit.metrics._load_plugins()


class _Brightness(Metric):
    """Mean pixel value of what it is fed (a sink for another metric's own passes)."""

    name = "brightness"

    def setup(self):
        self.values = []

    def update(self, generated: Generated):
        self.values.append(generated.images.flatten())

    def compute(self):
        return {"brightness": float(torch.cat(self.values).mean())}


class _PerVoice(Metric):
    """A metric with inputs of its own, as the test captions spoken by other voices would be: it ignores the
    shared pass and runs one generation pass per voice (here, speech shifted by the voice) in `compute`,
    feeding another metric's class once per voice; numbers per voice and their mean."""

    name, title = "per_voice", "Per voice"
    headline = ("per_voice", "mean")
    VOICES = {"amy": 0.0, "joe": 1.0}

    def compute(self):
        per_voice = {}
        for voice, shift in self.VOICES.items():
            sink = _Brightness(self.ctx)
            sink.setup()
            batches = [{"mel": torch.full((4, 2, 1), shift), "mel_lengths": torch.ones(4, dtype=torch.long)}]
            measure(self.ctx.bundle, batches, [sink], 1, self.ctx.config.seed)
            per_voice[voice] = sink.compute()
        mean = sum(v["brightness"] for v in per_voice.values()) / len(per_voice)
        return {"per_voice": per_voice, "mean": {"brightness": mean}, "voices": len(per_voice)}


def test_a_metric_may_run_its_own_generation_passes_and_nest_its_numbers(registry):
    s2ikit.metrics.register(_PerVoice)
    bundle = GeneratorBundle(_Toy(False), lambda mel, lengths: mel[:, 0, :].expand(-1, 2), None, None, None, {})
    ctx = Context(bundle, _Data(), EvaluateConfig(), torch.device("cpu"), log=lambda s: None)
    active, skipped = build_metrics(["per_voice"], ctx)
    measure(bundle, _batches(), active.values(), 1, seed=0)  # the shared pass: nothing for this metric
    result = active["per_voice"].compute()
    numbers = headline_numbers({"per_voice": result})
    assert numbers == {"per_voice/per_voice/amy/brightness": 0.0, "per_voice/per_voice/joe/brightness": 1.0,
                       "per_voice/mean/brightness": 0.5}  # fmt: skip
    assert active["per_voice"].summary(result) == (
        "per_voice/per_voice/amy/brightness 0, per_voice/per_voice/joe/brightness 1, per_voice/mean/brightness 0.5"
    )  # the default line: its headline
