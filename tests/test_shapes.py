import numpy as np
import pytest

from s2ikit.config import load_preset
from s2ikit.data.sources.shapes import COLOURS, ShapesSource, render
from s2ikit.utils.errors import UserError


def source(**shapes):
    return ShapesSource(load_preset("shapes", {"shapes": shapes} if shapes else {}), None)


def test_default_index_counts_split_and_classes():
    records = source().index()
    assert len(records) == 960
    assert len({r.class_id for r in records}) == 48
    assert sum(r.split == "test" for r in records) == 192
    for class_id in range(48):  # every class in both splits
        assert {r.split for r in records if r.class_id == class_id} == {"train", "test"}
    assert all(len(r.captions) == 3 for r in records)


def test_index_is_deterministic_and_seeded():
    assert [r.to_json() for r in source().index()] == [r.to_json() for r in source().index()]
    other = ShapesSource(load_preset("shapes", {"prepare": {"seed": 1}}), None).index()
    assert [r.to_json() for r in other] != [r.to_json() for r in source().index()]


def test_captions_describe_the_attributes():
    for record in source(images_per_class=2).index():
        a = record.attributes
        for caption in record.captions:
            assert a["colour"] in caption.text and a["shape"] in caption.text and a["size"] in caption.text
            if "background" in caption.text or " on " in caption.text:
                assert a["background"] in caption.text
        assert record.class_name == f"{a['size']}_{a['colour']}_{a['shape']}"


def test_subset_keeps_full_class_ids():
    records = source(colours="blue", shapes="star", sizes="large").index()
    assert {r.class_name for r in records} == {"large_blue_star"}
    full = {r.class_name: r.class_id for r in source(images_per_class=1).index()}
    assert records[0].class_id == full["large_blue_star"]


def test_render_draws_the_colour_at_the_shape_centre():
    attributes = {
        "colour": "green",
        "shape": "circle",
        "size": "large",
        "grey": 128,
        "radius": 0.3,
        "x": 0.5,
        "y": 0.5,
        "rotation": 0.0,
    }
    image = np.asarray(render(attributes, 64))
    assert image.shape == (64, 64, 3)
    assert tuple(image[32, 32]) == COLOURS["green"]
    assert tuple(image[1, 1]) == (128, 128, 128)


def test_bad_vocabulary_is_a_clear_error():
    with pytest.raises(UserError, match="shapes.colours"):
        source(colours="red,pink")
