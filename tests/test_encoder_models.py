import math

import pytest
import torch

from s2ikit.core.retrieval import mean_average_precision, recall_at_k
from s2ikit.models.image_encoder import ConvImageEncoder, InceptionImageEncoder, find_inception_weights
from s2ikit.models.speech_encoder import SpeechEncoder
from s2ikit.training.encoder_loss import matching_loss


def small_encoder(**kw):
    torch.manual_seed(0)
    return SpeechEncoder(embed_dim=64, attention_hidden=16, **kw).eval()


def test_speech_encoder_shapes_and_unit_norm():
    enc = small_encoder()
    mel, lengths = torch.randn(3, 120, 40), torch.tensor([120, 80, 31])
    out = enc(mel, lengths)
    assert out.shape == (3, 64)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    assert SpeechEncoder().pool.out.out_features == 1024  # the paper's 1024-d embedding by default


def test_lengths_follow_the_unpadded_convolutions():
    enc = small_encoder()
    lengths = torch.tensor([16, 17, 100, 101])
    # S2IGAN: int((L - (k - s)) / s), twice
    expected = [int((int((L - 4) / 2) - 4) / 2) for L in lengths.tolist()]
    assert enc.output_lengths(lengths).tolist() == expected
    with pytest.raises(ValueError, match="at least 16 frames"):
        enc(torch.randn(1, 15, 40), torch.tensor([15]))


def test_embedding_does_not_depend_on_padding():
    enc = small_encoder()
    utterance = torch.randn(1, 73, 40)
    short = torch.cat([utterance, torch.zeros(1, 7, 40)], dim=1)
    long = torch.cat([utterance, torch.randn(1, 207, 40)], dim=1)  # garbage after the end must not matter
    other = torch.randn(1, 280, 40)
    a = enc(short, torch.tensor([73]))
    b = enc(torch.cat([long, other]), torch.tensor([73, 280]))[:1]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_matching_loss_equals_a_hand_computed_case():
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    speech = torch.tensor([[1.0, 0.0], [0.6, 0.8]])

    # S = 10 * image @ speech.T = [[10, 6], [0, 8]]
    def ce(logits, target):
        return -logits[target] + math.log(sum(math.exp(v) for v in logits))

    i2s = (ce([10, 6], 0) + ce([0, 8], 1)) / 2
    s2i = (ce([10, 0], 0) + ce([6, 8], 1)) / 2
    loss = matching_loss(image, speech, torch.tensor([0, 1]), scale=10.0)
    assert float(loss) == pytest.approx(i2s + s2i, rel=1e-6)
    # same class: the off-diagonal pair is not a negative, so each row has only its positive left
    assert float(matching_loss(image, speech, torch.tensor([3, 3]), scale=10.0)) == pytest.approx(0.0, abs=1e-6)
    # unknown classes (-1) are never masked
    assert float(matching_loss(image, speech, torch.tensor([-1, -1]), 10.0)) == pytest.approx(i2s + s2i, rel=1e-6)


def test_retrieval_metrics_on_a_hand_built_ranking():
    sim = torch.tensor([[0.9, 0.8, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4]])
    relevant = torch.tensor([[True, False, False, True], [True, False, False, False]])
    # query 0 ranks items 0,1,3,2 -> hits at ranks 1 and 3: AP = (1/1 + 2/3) / 2
    # query 1 ranks items 3,2,1,0 -> hit at rank 4: AP = 1/4
    assert mean_average_precision(sim, relevant) == pytest.approx(((1 + 2 / 3) / 2 + 0.25) / 2)
    assert recall_at_k(sim, relevant, ks=(1, 3, 4)) == {1: 0.5, 3: 0.5, 4: 1.0}


def test_conv_image_encoder_shapes():
    out = ConvImageEncoder(embed_dim=32, width=8)(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 32)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_inception_encoder_loads_a_state_dict_file_and_stays_frozen(tmp_path):
    from torchvision.models import inception_v3

    weights = tmp_path / "inception_v3_google-test.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), weights)
    enc = InceptionImageEncoder(find_inception_weights(weights), embed_dim=16).train()
    assert not enc.backbone.training and enc.proj.training
    assert all(not p.requires_grad for p in enc.backbone.parameters())
    out = enc(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert out.shape == (2, 16)
    with pytest.raises(FileNotFoundError, match="not found"):
        find_inception_weights(tmp_path / "missing.pth")
