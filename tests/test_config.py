import dataclasses

import pytest

from s2ikit.config import (
    DatasetEntry,
    EncoderConfig,
    GANConfig,
    LoaderConfig,
    PrepareFlag,
    PrepareSource,
    Preset,
    datasets,
    load_preset,
    parse_overrides,
    register_dataset,
)
from s2ikit.utils.checks import at_least, checked, in_group, setting
from s2ikit.utils.errors import UserError


def test_shapes_preset_loads_with_s2igan_features():
    preset = load_preset("shapes")
    assert (preset.features.n_mels, preset.features.n_fft, preset.features.hop_length) == (40, 551, 220)
    assert preset.tts.length_scales == (0.9, 1.1)
    assert preset.prepare.image_size == 64


def test_overrides_are_typed():
    preset = load_preset("shapes", parse_overrides(["tts.noise_scale=0.3", "prepare.image_size=128"]))
    assert preset.tts.noise_scale == 0.3
    assert preset.prepare.image_size == 128


def test_unknown_key_names_the_file_and_key(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("[prepare]\nimage_sise = 64\n")
    with pytest.raises(UserError, match=r"mine\.toml \[prepare\]\.image_sise: unknown key \(known: image_format, "):
        load_preset(str(path))
    with pytest.raises(UserError, match=r"^--set gan\.nfg: unknown key \(known: .*ngf"):
        load_preset("shapes", parse_overrides(["gan.nfg=3"]))


def test_unknown_section_and_bad_value():
    with pytest.raises(UserError, match=r"unknown section \[gann\]"):
        load_preset("shapes", {"gann": {"lr": "1"}})
    with pytest.raises(UserError, match="image_size: expected int, got 'big'"):
        load_preset("shapes", parse_overrides(["prepare.image_size=big"]))
    with pytest.raises(UserError, match="SECTION.KEY=VALUE"):
        parse_overrides(["noise_scale=0.3"])


def test_missing_preset_lists_known_ones():
    with pytest.raises(UserError, match="known: .*shapes"):
        load_preset("no-such-preset")


@pytest.mark.parametrize(
    "setting, message",
    [
        ("gan.block=vsfmm", "--set gan.block: 'vsfmm' is not one of vsfm|dfgan"),
        ("gan.fusion=mul", "--set gan.fusion: 'mul' is not one of wfm|add|product"),
        ("gan.augment_real=rotate", "--set gan.augment_real: 'rotate' is not one of none|flip|dihedral"),
        ("encoder.image_encoder=resnet", "--set encoder.image_encoder: 'resnet' is not one of inception_v3|cnn"),
        ("evaluate.judge_augment=turn", "--set evaluate.judge_augment: 'turn' is not one of none|flip|dihedral"),
        ("features.dtype=int8", "--set features.dtype: 'int8' is not one of float32|float16"),
        ("features.normalize=bogus", "--set features.normalize: 'bogus' is not one of utterance|none"),
        ("features.window=kaiser", "--set features.window: 'kaiser' is not one of hann|hamming|blackman|"),
        ("prepare.image_format=gif", "--set prepare.image_format: 'gif' is not one of png|jpg"),
        ("flickr8k.dev_split=val", "--set flickr8k.dev_split: 'val' is not one of none|train"),
        ("tts.device=tpu", "--set tts.device: 'tpu' is not one of cpu|cuda"),
    ],
)
def test_a_choice_outside_its_literal_is_one_line_naming_the_flag(setting, message):
    with pytest.raises(UserError) as error:
        load_preset("cub", parse_overrides([setting]))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "setting, message",
    [
        ("gan.ngf=x", "--set gan.ngf: expected int, got 'x'"),
        ("tts.length_scales=", "--set tts.length_scales: must not be empty"),
        ("tts.length_scales=1.0,0", "--set tts.length_scales: each value must be > 0, got 0.0"),
        ("features.n_mels=0", "--set features.n_mels: must be at least 1, got 0"),
        ("features.hop_length=-5", "--set features.hop_length: must be > 0, got -5"),
        ("features.n_fft=256", "--set features.n_fft: win_length must not exceed n_fft (256), got 551"),
        ("prepare.image_size=0", "--set prepare.image_size: must be at least 8, got 0"),
        ("prepare.jpeg_quality=101", "--set prepare.jpeg_quality: must be in [1, 100], got 101"),
        ("prepare.shard_size=0", "--set prepare.shard_size: must be at least 1, got 0"),
        ("gan.image_size=48", "--set gan.image_size: must be a power of two in [32, 256], got 48"),
        ("gan.image_size=512", "--set gan.image_size: must be a power of two in [32, 256], got 512"),
        ("gan.batch_size=0", "--set gan.batch_size: must be at least 1, got 0"),
        ("gan.lr_g=0", "--set gan.lr_g: must be > 0, got 0.0"),
        ("gan.betas=0.5", "--set gan.betas: needs 2 values, got 1"),
        ("gan.ema_decay=1", "--set gan.ema_decay: must be in [0, 1), got 1.0"),
        ("encoder.epochs=0", "--set encoder.epochs: must be at least 1, got 0"),
        ("encoder.embed_dim=255", "--set encoder.embed_dim: must be a positive even number, got 255"),
        ("encoder.val_fraction=1.5", "--set encoder.val_fraction: must be in [0, 1), got 1.5"),
        ("places.test_fraction=1", "--set places.test_fraction: must be in [0, 1), got 1.0"),
        ("evaluate.images_per_caption=0", "--set evaluate.images_per_caption: must be at least 1, got 0"),
    ],
)
def test_a_value_out_of_range_is_one_line_naming_the_flag(setting, message):
    with pytest.raises(UserError) as error:
        load_preset("cub", parse_overrides([setting]))
    assert str(error.value) == message


def test_a_bad_value_in_a_file_names_the_file_section_and_key(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("[gan]\nngf = 0\n")
    with pytest.raises(UserError) as error:
        load_preset(str(path))
    assert str(error.value) == f"{path} [gan].ngf: must be at least 1, got 0"
    path.write_text('[features]\nnormalize = "mean"\n')
    with pytest.raises(UserError) as error:
        load_preset(str(path))
    assert str(error.value) == f"{path} [features].normalize: 'mean' is not one of utterance|none"
    path.write_text('[tts]\nlength_scales = 1.0\n[cub]\nlimit = "all"\n')
    with pytest.raises(UserError, match=r"mine\.toml \[tts\]\.length_scales: expected a list, got 1\.0"):
        load_preset(str(path))
    path.write_text("[cub]\nbbox_crop = 1\n")
    with pytest.raises(UserError, match=r"mine\.toml \[cub\]\.bbox_crop: expected true/false, got 1"):
        load_preset(str(path))


def test_a_flag_named_by_the_command_is_named_in_its_error():
    with pytest.raises(UserError, match=r"^--limit: must be at least 0, got -1$"):
        load_preset("cub", {"cub": {"limit": -1}}, flags={"cub.limit": "--limit"})


def test_dataclasses_built_in_code_are_checked_too():
    with pytest.raises(UserError, match=r"^gan\.block: 'x' is not one of vsfm\|dfgan$"):
        GANConfig(block="x")
    with pytest.raises(UserError, match=r"^loader\.mode: 'eval' is not one of train\|test$"):
        LoaderConfig(mode="eval")
    assert GANConfig(image_size=32, block="dfgan").block == "dfgan"


def test_every_prepare_flag_sets_a_key_of_its_preset():
    for entry in datasets().values():
        for flag in entry.prepare.flags:
            section, name = flag.key.split(".")
            assert name in {f.name for f in dataclasses.fields(getattr(Preset(), section))}, flag


def test_each_data_set_has_its_own_typed_section_read_like_the_fixed_ones():
    assert set(datasets()) == {"shapes", "cub", "oxford", "flickr8k", "places", "manifest", "spokencoco"}
    preset = load_preset("cub", parse_overrides(["cub.limit=3", "places.limit=2"]))
    assert (preset.cub.limit, preset.places.limit, preset.shapes) == (3, 2, datasets()["shapes"].settings())
    assert type(preset.cub) is datasets()["cub"].settings
    with pytest.raises(AttributeError, match="no section 'birds'"):
        _ = preset.birds
    assert Preset() == Preset(datasets={"cub": datasets()["cub"].settings()})  # the rest default, as fixed sections do


def test_the_catalog_refuses_a_data_set_that_would_shadow_or_mistype_a_key():
    @dataclasses.dataclass(frozen=True)
    class Settings:
        limit: int = 0

    def entry(name: str, *flags: PrepareFlag) -> DatasetEntry:
        return DatasetEntry(name, Settings, PrepareSource("help", flags), "terms")

    with pytest.raises(TypeError, match="'gan'"):
        register_dataset(entry("gan"))
    with pytest.raises(TypeError, match="--lim sets birds.lim, which is no preset key"):
        register_dataset(entry("birds", PrepareFlag("--lim", "birds.lim", "N")))
    assert "birds" not in datasets()


def test_a_rule_declared_beside_its_field_is_checked_and_names_the_section():
    @dataclasses.dataclass(frozen=True)
    @checked("demo")
    class Demo:
        width: int = setting(4, at_least(1), group="network")
        name: str = "x"

    assert Demo(width=2).width == 2 and in_group(Demo, "network") == ("width",) and in_group(Demo, "loss") == ()
    with pytest.raises(UserError, match=r"^demo\.width: must be at least 1, got 0$"):
        Demo(width=0)
    with pytest.raises(TypeError, match="rules given twice"):
        checked("demo", width=at_least(2))(Demo)
    with pytest.raises(TypeError, match="group 'shape' is not one of"):
        setting(1, group="shape")


@pytest.mark.parametrize("config", [GANConfig, EncoderConfig])
def test_every_training_setting_says_what_it_shapes(config):
    assert {
        f.name: f.metadata.get("group") for f in dataclasses.fields(config) if f.metadata.get("group") is None
    } == {}
