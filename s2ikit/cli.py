"""The `s2ikit` command. Each command parses flags, builds a frozen config, and calls one library function."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from s2ikit import __version__
from s2ikit.audio.limits import GRID_COLUMNS, MAX_AUDIO_SECONDS, MAX_IMAGES, MAX_INPUTS, MAX_TEXT_CHARS
from s2ikit.config import PrepareFlag, PrepareSource, datasets, load_preset, origin_of, parse_overrides
from s2ikit.utils import exit_codes
from s2ikit.utils.download import Limits
from s2ikit.utils.errors import UserError
from s2ikit.utils.stop_signals import StopRequested

console = Console(stderr=True)
app = typer.Typer(
    help="Speech-to-image generation with Fusion-S2iGan: prepare data, train, evaluate, generate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
prepare_app = typer.Typer(
    help="Turn a data set into WebDataset shards: index -> speech -> log-mel -> images -> shards.\n\n"
    "Resumable (rerun the same command after an interruption), parallel (--workers) and splittable over a "
    "cluster (--num-partitions/--partition, then --finalize).",
    no_args_is_help=True,
)
app.add_typer(prepare_app, name="prepare")


def friendly(fn: Callable) -> Callable:
    """Show a UserError as one line, without a traceback, and exit with its code (s2ikit/utils/exit_codes.py:
    2 for bad input; a training that diverged or was stopped by a signal has its own); a stop signal that ends
    a command where it stands (`prepare`) is one line and PREEMPTED too."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            code = getattr(e, "exit_code", exit_codes.BAD_INPUT)
            label = "[bold yellow]stopped:[/]" if code == exit_codes.PREEMPTED else "[bold red]error:[/]"
            console.print(f"{label} {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code) from None
        except StopRequested as e:
            line = f"by {e.signal}; what was finished is kept: rerun the same command to go on (exit {e.code})"
            console.print(f"[bold yellow]stopped:[/] {line}", highlight=False, soft_wrap=True)
            raise typer.Exit(exit_codes.PREEMPTED) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"s2ikit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """s2ikit: spoken descriptions in, pictures out."""


@app.command()
def doctor() -> None:
    """Check torch/CUDA, TTS backends and voices, cached Inception weights and free disk; say how to fix gaps."""
    from s2ikit.doctor import run_checks

    table = Table(title=f"s2ikit {__version__}")
    for column in ("component", "status", "detail", "what to do"):
        table.add_column(column, overflow="fold")
    checks = run_checks()
    for check in checks:
        status = "[green]ok[/]" if check.ok else "[yellow]missing[/]"
        table.add_row(escape(check.name), status, escape(check.detail), "" if check.ok else escape(check.fix))
    Console().print(table)


@app.command()
@friendly
def voices() -> None:
    """List the TTS voices installed here: name (ENGINE:VOICE), engine, sex, accent and the prosody it controls.

    A data set's captions can be spoken by several of them: name them in the preset's \\[tts] section,
    `voices = ["espeak-ng:en-us+f3", "flite:slt"]`, or on the command line, `s2ikit prepare shapes --out DATA
    --set tts.voices=espeak-ng:en-us+f3,flite:slt --set tts.pitches=0.9,1.0,1.1`. Each caption's voice, rate
    (tts.length_scales) and pitch are drawn by a seeded hash and recorded in its shard; a voice speaks a rate or
    pitch it has no control for at its own. `--set tts.formant_shifts=1.0,1.2` also moves each caption's formants
    (any voice: a longer or shorter vocal tract, Praat's Change gender). `make voices` installs espeak-ng, flite
    and festival with their voices; the voices extra, Praat's Python package.
    """
    from s2ikit.tts import installed_voices

    # each control as the [tts] key that varies it
    keys = {"length_scale": "length_scales", "pitch": "pitches", "noise_scale": "noise_scale", "noise_w": "noise_w"}
    table = Table(title="installed TTS voices (tts.voices)")
    for column in ("voice", "engine", "sex", "accent", "controls (tts keys)"):
        table.add_column(column, overflow="fold")
    for voice in installed_voices():
        engine = voice.spec.partition(":")[0]
        controls = " ".join(key for control, key in keys.items() if control in voice.controls)
        table.add_row(escape(voice.spec), engine, voice.sex or "?", escape(voice.accent), controls)
    Console().print(table)


@app.command("download-weights")
@friendly
def download_weights(
    dest: Path | None = typer.Option(
        None, "--dest", help="Folder to put them in (default: the torch hub cache, where s2ikit looks for them)."
    ),
    timeout: float = typer.Option(
        Limits.timeout, "--timeout", min=0.001, help="Seconds to wait for the connection or for any single read."
    ),
    deadline: float = typer.Option(
        Limits.deadline, "--deadline", min=0.001, help="Seconds a file's whole transfer may take before it is given up."
    ),
    min_rate: float = typer.Option(
        Limits.min_rate / 1000,
        "--min-rate",
        min=0,
        help="kB/s: a transfer slower than this, averaged over --rate-window, is abandoned (0: never).",
    ),
    rate_window: float = typer.Option(
        Limits.window, "--rate-window", min=0.001, help="Seconds the transfer rate is averaged over for --min-rate."
    ),
) -> None:
    """Fetch the two standard Inception-v3 weight files now, for machines that will run without a network.

    torchvision's Inception-v3 (image encoder, mAP, R@k) and torch-fidelity's (FID, IS), each checked against
    the sha256 its name carries; files already there and intact are skipped. Online machines need not run
    this: the files are fetched on first use. A slow or stalled mirror is abandoned (by default: below 10 kB/s
    over 30 s, or an hour in all), a body longer than the file can be is refused, and an interrupted download
    (Ctrl-C, SIGTERM) leaves no partial file; one a killed run left is removed by the next.
    Example: s2ikit download-weights --dest /shared/torch/hub/checkpoints
    """
    from s2ikit.models.weights import download_standard, hub_checkpoints

    limits = Limits(timeout=timeout, deadline=deadline, min_rate=1000 * min_rate, window=rate_window)
    for entry, path, fetched in download_standard(dest, limits):
        typer.echo(f"{entry.what}: {path} ({'fetched, sha256 verified' if fetched else 'already there, verified'})")
    hub = hub_checkpoints()
    if dest is not None and dest.resolve() != hub.resolve():
        typer.echo(f"s2ikit looks in {hub}: copy the files there on each machine, or point TORCH_HOME at a folder "
                   "whose hub/checkpoints holds them")  # fmt: skip


# ---- prepare ----------------------------------------------------------------------------------------------
# One command per registered data set (s2ikit.config.datasets()), built from the PrepareSource its module declares:
# the options below, then the data set's own.
ROOT = typer.Option(
    ...,
    "--root",
    exists=True,
    file_okay=False,
    help="The data set's folder as downloaded (layout: README, 'Data sets').",
)
OUT = typer.Option(..., "--out", "-o", help="Output folder (shards, index, work files). Rerun to resume.")
PRESET = typer.Option(None, "--preset", help="Preset name in pipelines/ or a .toml path (default: the data set's).")
SET = typer.Option(
    None, "--set", help="Override a preset value: SECTION.KEY=VALUE, e.g. tts.noise_scale=0.3. Repeatable."
)
WORKERS = typer.Option(1, "--workers", "-j", min=1, help="Worker processes (TTS is the slow part: use your cores).")
PARTITIONS = typer.Option(
    1, "--num-partitions", min=1, help="Split the work into this many slices (cluster array jobs)."
)
PARTITION = typer.Option(None, "--partition", min=0, help="Run only this slice (0-based); finish with --finalize.")
FINALIZE = typer.Option(False, "--finalize", help="Only check that every slice is done and write the totals.")
FORCE = typer.Option(None, "--force", help="Redo a step even if up to date: index, speech, features, images, shards.")
CACHE = typer.Option(None, "--cache-dir", envvar="S2IKIT_CACHE_DIR", help="TTS audio cache (default: ~/.cache/s2ikit).")
IMAGE_SIZE = PrepareFlag(
    "--image-size", "prepare.image_size", "Image side in pixels (overrides prepare.image_size).", minimum=8
)
TTS = PrepareFlag(
    "--tts", "tts.backend", "TTS backend (overrides tts.backend): piper, or coqui (Tacotron 2; see README).", str
)
_COMMON_OPTIONS = (  # (parameter, type, option) of every prepare command, after --root where there is one
    ("out", Path, OUT),
    ("preset", str | None, PRESET),
    ("overrides", list[str] | None, SET),
    ("workers", int, WORKERS),
    ("num_partitions", int, PARTITIONS),
    ("partition", int | None, PARTITION),
    ("finalize", bool, FINALIZE),
    ("force", list[str] | None, FORCE),
)


def _parameter_name(flag: PrepareFlag) -> str:
    """The name Typer passes the flag's value under: --bbox-crop/--no-bbox-crop -> bbox_crop."""
    return flag.flag.split("/")[0].removeprefix("--").replace("-", "_")


def prepare_command(dataset: str, source: PrepareSource) -> Callable[..., None]:
    """The `s2ikit prepare DATASET` command: --root (unless generated), the common options, --cache-dir for data
    sets spoken by TTS, then --image-size, --tts and the data set's own flags, each setting one preset key."""
    flags = (IMAGE_SIZE, *((TTS,) if source.tts else ()), *source.flags)
    options = [("root", Path, ROOT)] if source.root else []
    options += _COMMON_OPTIONS
    options += [("cache_dir", Path | None, CACHE)] if source.tts else []
    options += [
        (_parameter_name(f), f.kind | None, typer.Option(None, f.flag, help=f.help, min=f.minimum)) for f in flags
    ]

    def command(**given: Any) -> None:
        extra = {f.key: given.pop(_parameter_name(f)) for f in flags}
        extra = {k: str(v.resolve()) if isinstance(v, Path) else v for k, v in extra.items()}
        given_flags = {f.key: f.flag for f in flags if extra[f.key] is not None}  # the rest may come from --set
        run_prepare(dataset, extra, given_flags, **given)

    # Typer reads the options from the signature.
    command.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=k) for n, k, d in options]
    )
    return friendly(command)


def run_prepare(
    dataset: str,
    extra: dict[str, Any],
    flags: dict[str, str],
    out: Path,
    preset: str | None,
    overrides: list[str] | None,
    workers: int,
    num_partitions: int,
    partition: int | None,
    finalize: bool,
    force: list[str] | None,
    root: Path | None = None,
    cache_dir: Path | None = None,
) -> None:
    """Prepare `dataset` into `out`; `extra` holds the values of its key-setting flags (None: not given), and
    `flags` names each key's flag for error messages."""
    from s2ikit.preparation.prepare import RunOptions, prepare
    from s2ikit.preparation.steps import PrepareContext
    from s2ikit.tts.cache import default_cache_dir

    sections = parse_overrides(overrides or [])
    for key, value in extra.items():
        if value is not None:
            section, name = key.split(".")
            sections.setdefault(section, {})[name] = value
    if partition is not None and partition >= num_partitions:
        raise UserError(f"--partition {partition} must be smaller than --num-partitions {num_partitions}")
    config = load_preset(preset or dataset, sections, flags)
    ctx = PrepareContext(out=out, dataset=dataset, preset=config, root=root, cache_dir=cache_dir or default_cache_dir())
    options = RunOptions(
        workers=workers,
        num_partitions=num_partitions,
        partition=partition,
        force=frozenset(force or ()),
        finalize_only=finalize,
    )
    report = prepare(ctx, options, console)
    print_report(report)


def print_report(report) -> None:
    if not report.finalized:
        console.print(
            f"Done with this slice ({report.units} units) in {report.seconds:.1f} s. "
            f"{len(report.missing)} units of other slices remain; when all are done run the same command "
            "with --finalize."
        )
        return
    ran = ", ".join(f"{k} x{v}" for k, v in report.ran.items() if v) or "nothing (all up to date)"
    table = Table(title=f"{report.dataset['dataset']} prepared in {report.seconds:.1f} s -> {report.out}")
    for column in ("split", "samples", "captions", "shards"):
        table.add_column(column, justify="right")
    for name, split in report.dataset["splits"].items():
        table.add_row(name, str(split["samples"]), str(split["captions"]), str(len(split["shards"])))
    console.print(table)
    console.print(f"steps run: {ran}")
    failures = report.dataset["failures"]
    if failures:
        console.print(f"[yellow]{failures} skipped samples/captions[/], reasons in {report.out / 'failures.jsonl'}")
    console.print(f"shards: {report.out / 'shards'}")


def add_prepare_commands(group: typer.Typer) -> None:
    """`prepare NAME` for every data set in the catalog: the generated ones (no download to wait for) first."""
    for name, entry in sorted(datasets().items(), key=lambda item: (item[1].prepare.root, item[0])):
        group.command(name, help=entry.prepare.help)(prepare_command(name, entry.prepare))


add_prepare_commands(prepare_app)


def main() -> None:
    app()


# ---- speech encoder ---------------------------------------------------------------------------------------
def _dataset_name(data: Path) -> str:
    from s2ikit.data.dataset_info import dataset_name

    return dataset_name(data)


ALLOW_NEW_DATA = typer.Option(
    False, "--allow-new-data", help="Resume on another --data folder than the run was trained on (recorded)."
)


@app.command("train-encoder")
@friendly
def train_encoder_command(
    data: Path = typer.Option(..., "--data", "-d", help="A prepared data set (the --out of `s2ikit prepare`)."),
    run: Path = typer.Option(..., "--run", "-r", help="Run folder: config, metrics.jsonl, checkpoints, embeddings."),
    preset: str | None = typer.Option(None, "--preset", help="Preset name or .toml (default: the data set's)."),
    overrides: list[str] | None = SET,
    image_weights: Path | None = typer.Option(
        None, "--image-weights", help="Inception-v3 ImageNet state dict (default: the torch hub cache)."
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Overrides encoder.epochs."),
    minutes: float | None = typer.Option(None, "--minutes", min=0, help="Time budget (encoder.time_budget_minutes)."),
    resume: bool = typer.Option(True, "--resume/--restart", help="Continue from the run's last checkpoint, if any."),
    allow_new_data: bool = ALLOW_NEW_DATA,
) -> None:
    """Pretrain the speech encoder (conv1d + BiGRU + self-attention) to match images, S2IGAN's recipe.

    Keeps the checkpoint with the best validation retrieval (a part of the training split, never the test
    split), then writes every utterance's embedding to RUN/embeddings.h5. Multi-GPU:
    torchrun --nproc_per_node 4 -m s2ikit train-encoder -d D -r R  (short flags: torchrun claims --run)
    """
    from s2ikit.training.encoder import train_encoder
    from s2ikit.training.engine import exit_code

    sections = parse_overrides(overrides or [])
    for key, value in {"epochs": epochs, "time_budget_minutes": minutes}.items():
        if value is not None:
            sections.setdefault("encoder", {})[key] = value
    config = load_preset(preset or _dataset_name(data), sections).encoder
    train_encoder(
        data, run, config, resume=resume, image_weights=str(image_weights or ""), allow_new_data=allow_new_data,
        log=lambda line: console.print(line, soft_wrap=True, highlight=False),
    )  # fmt: skip
    if exit_code(run):  # stopped by the time budget: the state is saved, the same command goes on
        raise typer.Exit(exit_code(run))


@app.command()
@friendly
def embed(
    run: Path = typer.Option(..., "--run", "-r", help="A train-encoder run folder."),
    data: Path = typer.Option(..., "--data", "-d", help="The prepared data set to embed."),
    out: Path | None = typer.Option(None, "--out", "-o", help="HDF5 file (default: RUN/embeddings.h5)."),
    image_weights: Path | None = typer.Option(None, "--image-weights", help="Inception-v3 weights, if used."),
) -> None:
    """Write every utterance's speech embedding (and every image's) to HDF5 with the run's best encoder."""
    from s2ikit.training.embed import export_embeddings

    target = out or run / "embeddings.h5"
    counts = export_embeddings(run, data, target, image_weights=str(image_weights or ""))
    console.print(f"{target}: " + ", ".join(f"{k} {v} utterances" for k, v in counts.items()))


# ---- GAN ---------------------------------------------------------------------------------------------------
@app.command("train-gan")
@friendly
def train_gan_command(
    data: Path = typer.Option(..., "--data", "-d", help="A prepared data set (the --out of `s2ikit prepare`)."),
    encoder_run: Path = typer.Option(..., "--encoder-run", "-e", help="A `train-encoder` run folder (frozen here)."),
    run: Path = typer.Option(..., "--run", "-r", help="Run folder: config, metrics.jsonl, samples/, checkpoints/."),
    preset: str | None = typer.Option(None, "--preset", help="Preset name or .toml (default: the data set's)."),
    overrides: list[str] | None = SET,
    minutes: float | None = typer.Option(None, "--minutes", min=0, help="Time budget (gan.time_budget_minutes)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Stop after this many steps in total."),
    image_weights: Path | None = typer.Option(
        None, "--image-weights", help="Inception-v3 weights, if the encoder used them."
    ),
    resume: bool = typer.Option(True, "--resume/--restart", help="Continue from the run's last checkpoint, if any."),
    allow_new_data: bool = ALLOW_NEW_DATA,
) -> None:
    """Train Fusion-S2iGan: hinge loss + MA-GP for D; adversarial + DAMSM-style matching loss for G.

    Streams the shards, conditions on the frozen speech encoder of --encoder-run, keeps an EMA generator,
    writes sample grids with their captions, and resumes exactly where it stopped. Multi-GPU:
    torchrun --nproc_per_node 4 -m s2ikit train-gan -d D -e E -r R  (short flags: torchrun claims --run)
    """
    from s2ikit.core.checkpoints import GENERATOR
    from s2ikit.training.gan import train_gan

    sections = parse_overrides(overrides or [])
    if minutes is not None:
        sections.setdefault("gan", {})["time_budget_minutes"] = minutes
    config = load_preset(preset or _dataset_name(data), sections).gan
    status = train_gan(
        data, encoder_run, run, config, resume=resume, max_steps=steps, image_weights=str(image_weights or ""),
        log=lambda line: console.print(line, soft_wrap=True, highlight=False), allow_new_data=allow_new_data,
    )  # fmt: skip
    how = "already complete" if status.get("already_complete") else "stopped by the time budget" if status.get(
        "reason") == "time_budget" else "done"  # fmt: skip
    console.print(f"{how} at step {status['step']} of {status['total_steps']}; generator: {run / GENERATOR}")
    if status.get("reason") == "time_budget" and not status.get("already_complete"):
        raise typer.Exit(exit_codes.TIME_BUDGET)  # not finished: the same command goes on


# ---- evaluation and generation -----------------------------------------------------------------------------
@app.command()
@friendly
def evaluate(
    run: Path = typer.Argument(..., help="A `train-gan` run folder (or its checkpoints/generator.pt)."),
    data: Path | None = typer.Option(None, "--data", "-d", help="Prepared data set (default: the one trained on)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Report folder (default: RUN/eval)."),
    preset: str | None = typer.Option(None, "--preset", help="Preset name or .toml (default: the data set's)."),
    overrides: list[str] | None = SET,
    images_per_caption: int | None = typer.Option(
        None, "--images-per-caption", min=1, help="Generated images per test caption (evaluate.images_per_caption)."
    ),
    metrics: str | None = typer.Option(
        None,
        "--metrics",
        help="Comma-separated metrics to run, in order, e.g. class_accuracy,fid (evaluate.metrics; default: all).",
    ),
    inception_weights: Path | None = typer.Option(
        None,
        "--inception-weights",
        help="FID/IS weights: torch-fidelity's weights-inception-2015-12-05-6726825d.pth (default: torch hub cache).",
    ),
    image_weights: Path | None = typer.Option(
        None, "--image-weights", help="torchvision Inception-v3 weights for mAP/R@k (default: the torch hub cache)."
    ),
) -> None:
    """Generate images for every test caption and report class accuracy, diversity, FID, IS, mAP, R@k and retrieval.

    Writes RUN/eval/report.json, report.md and image grids (real image, then its generated ones). Metrics
    whose Inception weights are missing are skipped with the reason; the rest still run. --metrics (or the
    preset's evaluate.metrics) picks which run.
    Example: s2ikit evaluate runs/shapes/gan --metrics class_accuracy,diversity
    """
    from s2ikit.core.inference import load_bundle
    from s2ikit.evaluation.evaluate import evaluate as run_evaluation

    data_dir = data or Path(load_bundle(run).info["data"])
    sections = parse_overrides(overrides or [])
    if images_per_caption is not None:
        sections.setdefault("evaluate", {})["images_per_caption"] = images_per_caption
    flags = {}
    if metrics is not None:
        sections.setdefault("evaluate", {})["metrics"] = [name.strip() for name in metrics.split(",") if name.strip()]
        flags["evaluate.metrics"] = "--metrics"
    preset_name = preset or _dataset_name(data_dir)
    config = load_preset(preset_name, sections, flags).evaluate
    report = run_evaluation(
        run, config, out, data_dir, str(inception_weights or ""), str(image_weights or ""),
        log=lambda line: console.print(line, soft_wrap=True, highlight=False),
        metrics=config.metrics, metrics_from=origin_of(preset_name, sections, flags, "evaluate.metrics"),
    )  # fmt: skip
    for line in report["summary"].values():  # each metric's own line, in the order they ran
        if line:
            console.print(line, soft_wrap=True, highlight=False)
    Console().print(f"report: {Path(report['report'])}")


@app.command()
@friendly
def select(
    run: Path = typer.Argument(..., help="A `train-gan` run folder trained with gan.keep_generators=true."),
    data: Path | None = typer.Option(None, "--data", "-d", help="Prepared data set (default: the one trained on)."),
    preset: str | None = typer.Option(None, "--preset", help="Preset name or .toml (default: the data set's)."),
    overrides: list[str] | None = SET,
) -> None:
    """Pick the run's best kept generator by the class-accuracy judge on training captions (never the test split).

    GAN quality swings between checkpoints, so the last is not always the best. Judges every kept generator
    (checkpoints/generators/) on evaluate.select_captions training captions, copies the winner to
    RUN/checkpoints/best.pt and writes RUN/checkpoints/selection.json; then evaluate and generate that file.
    Example: s2ikit select runs/shapes/gan && s2ikit evaluate runs/shapes/gan/checkpoints/best.pt
    """
    from s2ikit.core.inference import load_bundle
    from s2ikit.evaluation.select import select_generator

    data_dir = data or Path(load_bundle(run).info["data"])
    config = load_preset(preset or _dataset_name(data_dir), parse_overrides(overrides or [])).evaluate
    selection = select_generator(
        run, config, data_dir, log=lambda line: console.print(line, soft_wrap=True, highlight=False)
    )
    console.print(f"selected step {selection['step']} ({selection['criterion']} accuracy on training captions)")
    Console().print(f"best generator: {selection['selected']}")


@app.command()
@friendly
def generate(
    run: str = typer.Argument(
        ...,
        help="A `train-gan` run folder, a generator .pt, an `s2ikit export` folder, or the id USER/NAME of a "
        "Hugging Face Hub model repo holding one (needs `pip install huggingface_hub`).",
    ),
    wav: list[Path] | None = typer.Option(
        None, "--wav", help=f"A spoken description (any sample rate, up to {MAX_AUDIO_SECONDS:.0f} s). Repeatable."
    ),
    text: list[str] | None = typer.Option(
        None,
        "--text",
        help=f"A sentence (up to {MAX_TEXT_CHARS} characters), spoken by the data set's TTS voice. Repeatable.",
    ),
    num: int = typer.Option(4, "--num", "-n", help=f"Images per input (different noise), 1 to {MAX_IMAGES}."),
    seed: int = typer.Option(0, "--seed", help="Noise seed: the same seed gives the same pictures."),
    out: Path = typer.Option(
        Path("generated.png"),
        "--out",
        "-o",
        help="Output grid (a new .png; never an input or a file that is not a PNG). "
        f"An input's images wrap after {GRID_COLUMNS} per row.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the -o grid if it already exists."),
    tts: str | None = typer.Option(None, "--tts", help="TTS backend for --text (default: the data set's)."),
    device: str = typer.Option(
        "auto", "--device", help="Where to run: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda, cuda:N."
    ),
    precision: str = typer.Option(
        "fp32",
        "--precision",
        help="fp32 (the same pictures everywhere), bf16 (about a third faster on CPUs with AMX or AVX-512 BF16 and "
        "on GPUs) or fp16 (GPUs only; refused on the CPU). bf16 and fp16 pictures differ slightly from fp32's.",
    ),
    bf16: bool = typer.Option(False, "--bf16", help="The same as --precision bf16."),
    revision: str | None = typer.Option(
        None, "--revision", help="For a Hub repo id USER/NAME as RUN: its branch, tag or commit (default main)."
    ),
) -> None:
    """Turn speech into pictures: wav files, or sentences spoken by the TTS, through a trained run.

    The same as `SpeechToImage.from_pretrained(RUN)(wav=..., text=..., num=N, seed=S)` in Python, with the same
    limits (also the demo's): sentences up to {chars} characters, recordings up to {seconds} s, {images} images
    per input, {inputs} inputs (--wav and --text together) per command.
    Example: s2ikit generate runs/shapes/gan --text "a large green triangle" --num 8 -o triangle.png
    """
    from s2ikit.core.grid import check_grid_path, save_rows
    from s2ikit.core.inference import PRECISIONS
    from s2ikit.core.speech_to_image import SpeechToImage, check_num, resolve_device

    if not wav and not text:
        raise UserError("give at least one --wav FILE or --text SENTENCE")
    check_num(num)
    check_grid_path(out, overwrite, [Path(run), *(wav or [])])
    if bf16 and precision not in ("fp32", "bf16"):
        raise UserError(f"--bf16 and --precision {precision}: give one of them")
    precision = "bf16" if bf16 else precision
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r}: must be one of {', '.join(PRECISIONS)}")
    where = resolve_device(device)
    if where.type == "cpu" and precision == "fp16":
        raise UserError("--precision fp16 runs on a GPU only (--device cuda); on the CPU use bf16 or fp32")
    pipe = SpeechToImage.from_pretrained(run, device=where, precision=precision, revision=revision)
    check_grid_path(out, overwrite, [pipe.bundle.path, *(wav or [])])  # the model file a run folder holds
    images, labels = pipe.generate(wav=wav or None, text=text or None, num=num, seed=seed, tts_backend=tts or "")
    save_rows(images, labels, out)
    Console().print(f"{out} ({len(labels)} input(s) x {num} image(s), step {pipe.step})")


generate.__doc__ = generate.__doc__.format(
    chars=MAX_TEXT_CHARS, seconds=f"{MAX_AUDIO_SECONDS:.0f}", images=MAX_IMAGES, inputs=MAX_INPUTS
)


@app.command()
@friendly
def export(
    run: Path = typer.Argument(..., help="A `train-gan` run folder or a generator .pt (e.g. RUN/checkpoints/best.pt)."),
    out: Path = typer.Argument(..., help="The folder to write (new, empty, or an earlier export to replace)."),
    push_to_hub: str | None = typer.Option(
        None,
        "--push-to-hub",
        metavar="USER/NAME",
        help="Then upload OUT to this Hugging Face Hub model repo, created when missing (needs `pip install "
        "huggingface_hub` and a token: `hf auth login` or HF_TOKEN).",
    ),
    private: bool = typer.Option(False, "--private", help="With --push-to-hub: create the repo private."),
    revision: str | None = typer.Option(
        None, "--revision", help="With --push-to-hub: the branch to push to, created from main when missing."
    ),
) -> None:
    """Write a shareable model folder: safetensors weights (no pickle), config.json and a model card README.md.

    Holds the EMA generator and its speech encoder, the log-mel recipe and the TTS settings; RUN/eval/report.json's
    numbers go into the model card when they are of the same step. `s2ikit generate OUT` and
    `SpeechToImage.from_pretrained(OUT)` load it; --push-to-hub USER/NAME (or `hf upload USER/NAME OUT .`) shares
    it unchanged, and then `SpeechToImage.from_pretrained("USER/NAME")` and `s2ikit generate USER/NAME` load it.
    Example: s2ikit export runs/shapes/gan shapes-model --push-to-hub you/s2ikit-shapes
    """
    from s2ikit.core import checkpoints, hub
    from s2ikit.core.export import export_generator
    from s2ikit.evaluation.report import read_summary

    if push_to_hub is not None:
        hub.check_repo_id(push_to_hub)  # before the export is written
    elif private or revision:
        raise UserError("--private and --revision go with --push-to-hub USER/NAME")
    run_dir = run if run.is_dir() else checkpoints.run_of(run)  # None: a generator.pt copied out of its run
    folder = export_generator(run, out, read_summary(run_dir / "eval" / "report.json") if run_dir else None)
    Console().print(f"exported to {folder}")
    if push_to_hub is not None:
        url = hub.upload(folder, push_to_hub, private, revision, f"s2ikit export of {run.name}")
        Console().print(f"pushed to {url}")


@app.command()
@friendly
def demo(
    run: Path = typer.Argument(..., help="A `train-gan` run folder, a generator .pt or an `s2ikit export` folder."),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="TCP port of the page."),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on. 127.0.0.1: this machine only. 0.0.0.0: every interface, e.g. a remote GPU "
        "machine reached through your own SSH tunnel (ssh -N -L 7860:localhost:7860 you@gpu-machine).",
    ),
) -> None:
    """A web page to speak into and see: record with the microphone, upload a recording or type a sentence
    (spoken by the data set's TTS voice); get the pictures side by side (one noise vector z each), the log-mel
    spectrogram the model heard and where the speech encoder's attention looked. Needs `pip install 's2ikit\\[demo]'`.

    The pictures are the ones `s2ikit generate` gives for the same input and --seed, within its limits: sentences
    up to {chars} characters, recordings up to {seconds} s, up to {images} pictures. Ctrl-C stops the server.
    Example: s2ikit demo runs/shapes/gan/checkpoints/best.pt --port 7860
    """
    from s2ikit.demo import serve

    serve(run, host, port, log=lambda line: Console().print(line, highlight=False, soft_wrap=True))


demo.__doc__ = demo.__doc__.format(chars=MAX_TEXT_CHARS, seconds=f"{MAX_AUDIO_SECONDS:.0f}", images=MAX_IMAGES)
