"""SiameseNet: symmetric by construction, embed, clear errors on bad input."""
import keras
import numpy as np
import pytest

import zoo
from zoo.models.siamese import SiameseNet


@pytest.mark.parametrize("head", ["distance", "abs_difference"])
def test_swapping_the_inputs_gives_the_same_output(head):
    keras.utils.set_random_seed(0)
    model = SiameseNet(input_size=4, embedding_size=2, units=[16], head=head)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(32, 4)).astype("float32"), rng.normal(size=(32, 4)).astype("float32")
    forward = np.asarray(model({"first": a, "second": b}))
    backward = np.asarray(model({"first": b, "second": a}))
    np.testing.assert_allclose(forward, backward, rtol=1e-6, atol=1e-7)
    assert forward.shape == (32, 1) and np.all((forward > 0) & (forward < 1))
    # identical inputs: the distance head is at its maximum
    same = np.asarray(model({"first": a, "second": a}))
    if head == "distance":
        assert np.all(same >= forward - 1e-7)


def test_embed_is_the_shared_network():
    model = SiameseNet(input_size=6, embedding_size=3, units=[8, 8])
    x = np.random.default_rng(1).uniform(0.5, 1.0, (5, 6)).astype("float32")
    z = model.embed(x)
    assert z.shape == (5, 3) and z.dtype == np.float32
    np.testing.assert_allclose(z, np.asarray(model.embed_tensor(x)), atol=1e-6)
    logit = np.asarray(model.compare(model.embed_tensor(x), model.embed_tensor(x[::-1])))
    prob = np.asarray(model({"first": x, "second": x[::-1]}))
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-logit)), atol=1e-6)


def test_bad_inputs_give_clear_errors():
    kepler = SiameseNet(input_size=4, units=[8], forbid_origin=True)
    good = np.ones((3, 4), "float32")
    with pytest.raises(ValueError, match="same dimension.*4 and 3"):
        kepler.predict({"first": good, "second": np.ones((3, 3))}, verbose=0)
    with pytest.raises(ValueError, match=r"shape \(3, 5\); expected \(batch, 4\)"):
        kepler.embed(np.ones((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        kepler.embed(np.array([[1.0, np.nan, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="NaN"):
        kepler.predict({"first": good, "second": np.where(np.eye(3, 4) > 0, np.nan, 1.0)}, verbose=0)
    at_origin = np.array([[1.0, 1.0, 0.2, 0.3], [0.0, 0.0, 0.5, 0.5]], "float32")
    with pytest.raises(ValueError, match=r"r = 0 \(rows \[1\]\)"):
        kepler.embed(at_origin)
    with pytest.raises(ValueError, match="'second'.*r = 0"):
        kepler.predict({"first": at_origin[:1], "second": at_origin[1:]}, verbose=0)
    with pytest.raises(ValueError, match="batch size"):
        kepler.predict({"first": good, "second": good[:2]}, verbose=0)
    # events may sit at the origin of space
    events = SiameseNet(input_size=4, units=[8])
    assert events.embed(at_origin).shape == (2, 1)


def test_bad_configurations_are_rejected():
    with pytest.raises(ValueError, match="head"):
        SiameseNet(input_size=4, head="cosine")
    with pytest.raises(ValueError, match="coordinate_names"):
        SiameseNet(input_size=4, coordinate_names=["x", "y"])
    with pytest.raises(ValueError, match="input_names"):
        SiameseNet(input_size=4, input_names=["a", "a"])


@pytest.mark.parametrize("name", ["siamese-kepler", "siamese-kepler-energy", "siamese-minkowski", "siamese-em-field"])
def test_presets_take_pairs_of_the_documented_size(name):
    spec = zoo.get_spec(name)
    model = zoo.load(name, pretrained=False)
    assert list(model.input_specs) == [t.name for t in spec.inputs]
    assert model.output_name == spec.outputs[0].name
    assert model.forbid_origin == name.startswith("siamese-kepler")
    assert len(model.coordinate_names) == spec.inputs[0].shape[1] == model.input_size


def test_export_has_an_embed_signature(tmp_path):
    import tensorflow as tf

    from serving import export

    model = SiameseNet(input_size=4, embedding_size=2, units=[8])
    model(model.example_inputs())
    path = export.export_model(model, tmp_path / "1")
    loaded = tf.saved_model.load(str(path))
    x = np.random.default_rng(2).uniform(0.5, 1.0, (5, 4)).astype("float32")
    embedding = loaded.signatures["embed"](first=tf.constant(x))["embedding"].numpy()
    np.testing.assert_allclose(embedding, model.embed(x), atol=1e-6)
    pairs = {"first": x, "second": x[::-1].copy()}
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in pairs.items()})["same"].numpy()
    np.testing.assert_allclose(served, model.predict(pairs, verbose=0), atol=1e-6)


def test_each_siamese_card_shows_only_the_simulator_ranges_of_its_own_mode():
    """The Kepler simulator records three modes and the Lorentz one events and fields; a card shows its own,
    as a table, and its limitations name nothing that does not apply."""
    from zoo import cards

    kepler = cards.render_card("siamese-kepler")
    assert "| angular_momentum.abs_angular_momentum | [0.4, 1.0] |" in kepler
    assert "| both." not in kepler and "| energy." not in kepler
    fields = cards.render_card("siamese-em-field")
    assert "| field_components |" in fields and "event_components" not in fields
    events = cards.render_card("siamese-minkowski")
    assert "| event_components |" in events and "field_components" not in events
    for card in (kepler, fields, events):
        assert "boosts" not in card.split("## Limitations")[1].split("##")[0]
        assert "ranges below" not in card
