"""core/factories.py: the settings that reach each network are read from its constructor, so none is forgotten."""

import dataclasses

import pytest

from s2ikit.config import EncoderConfig, GANConfig
from s2ikit.core import factories
from s2ikit.models.generator import Generator
from s2ikit.utils.checks import in_group


def test_a_generator_argument_without_a_config_field_is_refused():
    class WiderGenerator(Generator):
        def __init__(self, cond_dim: int = 1024, image_size: int = 256, ngf: int = 32, z_dim: int = 100,
                     block: str = "vsfm", modules: str = "dual", fusion: str = "wfm", attention: str = "pam",
                     smm_hidden: int = 256, condition: str = "speech", output_symmetry: str = "none",
                     head_width: int = 3):  # fmt: skip
            super().__init__(cond_dim, image_size, ngf, z_dim, block, modules, fusion, attention, smm_hidden,
                             condition, output_symmetry)  # fmt: skip

    with pytest.raises(TypeError, match=r"WiderGenerator\(head_width=\.\.\.\) has no GANConfig field 'head_width'"):
        factories.config_arguments(WiderGenerator, GANConfig, supplied=("cond_dim",))

    @dataclasses.dataclass(frozen=True)
    class Config(GANConfig):  # with its field, the argument is passed on and shapes the network
        head_width: int = dataclasses.field(default=3, metadata={"group": "network"})

    arguments = factories.config_arguments(WiderGenerator, Config, supplied=("cond_dim",))
    assert list(arguments)[-1] == "head_width" and factories.shaping(Config, arguments)[-1] == "head_width"


def test_an_argument_must_be_a_network_setting_and_a_stale_exception_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Config(GANConfig):
        ngf: int = dataclasses.field(default=32, metadata={"group": "loss"})

    with pytest.raises(TypeError, match=r"Config\.ngf is an argument of Generator, so its group must be one of"):
        factories.config_arguments(Generator, Config, supplied=("cond_dim",))
    with pytest.raises(TypeError, match="Generator takes no argument width"):
        factories.config_arguments(Generator, GANConfig, supplied=("cond_dim", "width"))


@pytest.mark.parametrize(
    "config, settings", [(GANConfig, factories.GAN_MODEL_SETTINGS), (EncoderConfig, factories.ENCODER_MODEL_SETTINGS)]
)
def test_the_resume_check_covers_exactly_the_network_group(config, settings):
    # each "network" setting reaches a network, and each one that reaches a network and shapes it is checked
    assert sorted(settings) == sorted(in_group(config, "network"))


def test_the_networks_get_the_same_arguments_as_their_configs_say():
    gan = GANConfig(image_size=32, ngf=8, ndf=4, d_plan="head", d_residual_init=1.0, condition="noise+speech")
    args = factories.generator_args(gan, 16)
    assert args == {"cond_dim": 16, **{k: getattr(gan, k) for k in factories.GENERATOR_SETTINGS}}
    D = factories.build_discriminator(gan, 16)
    assert D.feature_channels == 4 * 16 and all(float(b.gamma.detach()) == 1.0 for b in D.blocks)
    assert "d_residual_init" not in factories.GAN_MODEL_SETTINGS  # starting values only: a resume may change it
    encoders = factories.build_encoders(EncoderConfig(embed_dim=8, image_encoder="cnn", cnn_width=4), n_mels=5)
    assert encoders.speech_args == {"n_mels": 5, "embed_dim": 8, "conv_channels": [64, 128], "rnn_layers": 2,
                                    "attention_hidden": 128, "dropout": 0.0}  # fmt: skip
    assert encoders.image_args == {"kind": "cnn", "embed_dim": 8, "cnn_width": 4}
