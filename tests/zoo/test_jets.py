"""Jet-image preprocessing and the jet taggers' endpoints.

The image of a jet must be a function of the jet alone: the same under a rotation of
the whole event in phi (across the +-pi seam too), a reflection eta -> -eta and a
longitudinal boost (a translation in eta). The outputs are float32 with values <= 1, so
equal images agree to float32 rounding (1e-6). The arithmetic is float32 (as a 32-bit JAX
runs it); on the fixture's Pythia jets it gives float64's images.
"""
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import zoo
from zoo.models.jets import jet_images, kt_subjets, toy_jets

ROUNDING = 1e-6
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jets-seed31337.h5"


def shifted_phi(c, delta):
    out = c.copy()
    out[..., 2] = np.angle(np.exp(1j * (c[..., 2] + delta)))
    return out


def images(c, dtype="float32"):
    return ops.convert_to_numpy(jet_images(c, dtype=dtype))


@pytest.fixture(scope="module")
def jets():
    return toy_jets(16, seed=7)


@pytest.mark.parametrize("delta", [0.3, 2.2, -3.0])
def test_rotation_of_the_event_in_phi_gives_the_same_image(jets, delta):
    np.testing.assert_allclose(images(shifted_phi(jets, delta)), images(jets), atol=ROUNDING)


def test_reflection_in_eta_gives_the_same_image(jets):
    np.testing.assert_allclose(images(jets * np.array([1, -1, 1], "float32")), images(jets), atol=ROUNDING)


def test_translation_in_eta_gives_the_same_image(jets):
    np.testing.assert_allclose(images(jets + np.array([0, 1.1, 0], "float32")), images(jets), atol=ROUNDING)


def test_a_jet_across_the_phi_seam_is_whole():
    """A jet at phi = pi straddles the seam (half its constituents near -pi): same image as at phi = 0."""
    at_zero = toy_jets(8, seed=3)
    at_zero[..., 2] -= 1.0  # toy jets sit at phi ~ 1
    at_seam = shifted_phi(at_zero, np.pi)
    assert (at_seam[..., 2] > 2.5).any() and (at_seam[..., 2] < -2.5).any()
    np.testing.assert_allclose(images(at_seam), images(at_zero), atol=ROUNDING)


def test_padding_and_order_of_constituents_do_not_matter(jets):
    padded = np.concatenate([jets, np.zeros((len(jets), 9, 3), "float32")], axis=1)
    shuffled = padded[:, np.random.default_rng(0).permutation(padded.shape[1])]
    np.testing.assert_allclose(images(shuffled), images(jets), atol=ROUNDING)


def test_two_prong_jet_is_centred_rotated_downwards_and_normalised():
    """200 GeV at (0.3, 1.0), 75 GeV at Delta R = 0.5: leading subjet in the centre pixel (12, 12), the second
    0.5 straight below it, pixel (17, 12); pixels are p_T / sqrt(200^2 + 75^2)."""
    c = np.array([[[200.0, 0.3, 1.0], [75.0, 0.3 + 0.3, 1.0 + 0.4]]], "float32")
    image = images(c)[0]
    norm = np.hypot(200.0, 75.0)
    assert image[12, 12] == pytest.approx(200 / norm, rel=1e-6)
    assert image[17, 12] == pytest.approx(75 / norm, rel=1e-6)
    assert np.count_nonzero(image) == 2
    assert np.sum(image ** 2) == pytest.approx(1.0, rel=1e-6)


def test_third_subjet_is_flipped_to_the_right():
    c = np.array([[[200.0, 0.0, 0.0], [75.0, 0.0, -0.5], [40.0, -0.4, -0.2]]], "float32")
    image = images(c)[0]
    rows, columns = np.nonzero(image)
    third = image == image[image > 0].min()
    assert np.nonzero(third)[1][0] > 12, "the softest prong sits right of the centre column"
    assert set(rows) == {12, 17, np.nonzero(third)[0][0]} and 12 in columns


def test_kt_subjets_match_fastjet():
    fastjet = pytest.importorskip("fastjet")
    c = toy_jets(6, seed=11, constituents=25).astype("float64")
    ours = ops.convert_to_numpy(kt_subjets(c[..., 0], c[..., 1], c[..., 2], 0.2))  # float64, as the inputs
    definition = fastjet.JetDefinition(fastjet.kt_algorithm, 0.2)
    for jet, mine in zip(c, ours):
        particles = [fastjet.PseudoJet(pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta))
                     for pt, eta, phi in jet]
        theirs = sorted(((j.pt(), j.rap(), j.phi_std()) for j in
                         fastjet.ClusterSequence(particles, definition).inclusive_jets()), reverse=True)
        mine = mine[mine[:, 0] > 0]
        assert len(mine) == len(theirs)
        np.testing.assert_allclose(mine, np.array(theirs), rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def pythia_jets():
    h5py = pytest.importorskip("h5py")
    with h5py.File(FIXTURE, "r") as f:
        return f["constituents"][:]


def test_float32_arithmetic_gives_float64s_images_of_pythia_jets(pythia_jets):
    """600 W and QCD jets: every constituent lands in the same pixel and every subjet merges in the same order,
    as positions are measured from the hardest constituent and rapidities summed without cancellation (with
    float32 E - pz from E and pz, four of these jets moved by up to 0.03 in pixels, 0.06 in P(W))."""
    np.testing.assert_allclose(images(pythia_jets), images(pythia_jets, "float64"), rtol=0, atol=ROUNDING)


def test_one_subjet_jets_are_flipped_by_their_p_t_not_by_rounding(pythia_jets):
    """A jet with one kt subjet is rotated so that its centroid points down, which leaves the centroid no side:
    the half of the image with more p_T goes right. (Deciding by the centroid's rounding noise broke the
    reflection symmetry of 54 of the fixture's 151 one-subjet jets.)"""
    hardest = pythia_jets[np.arange(len(pythia_jets))[:, None], np.argsort(-pythia_jets[..., 0], axis=1)[:, :40]]
    subjets = ops.convert_to_numpy(kt_subjets(*[hardest[..., i].astype("float64") for i in range(3)], 0.2))
    one = pythia_jets[(subjets[..., 0] > 0).sum(axis=1) == 1]
    assert len(one) > 100
    original = images(one)
    np.testing.assert_allclose(images(one * np.array([1, -1, 1], "float32")), original, atol=ROUNDING)
    np.testing.assert_allclose(images(one * np.array([1, 1, -1], "float32")), original, atol=ROUNDING)
    right, left = original[:, :, 13:].sum(axis=(1, 2)), original[:, :, :12].sum(axis=(1, 2))
    assert (right >= left).all() and (right > left).mean() > 0.9


# ----------------------------------------------------------------------------- the presets' endpoints

@pytest.fixture(scope="module", params=["jet-cnn-w-vs-qcd", "jet-maxout-w-vs-qcd"])
def tiny_tagger(request):
    spec = zoo.get_spec(request.param)
    return zoo.load(request.param, pretrained=False, **zoo.get_family(spec.family).tiny_config(spec))


def test_preprocess_and_the_constituents_endpoint_agree_with_predict(tiny_tagger):
    c = toy_jets(5, seed=2)
    images_ = tiny_tagger.preprocess(c)
    np.testing.assert_allclose(images_, images(c), atol=ROUNDING)
    np.testing.assert_allclose(tiny_tagger.tag_constituents(c), tiny_tagger.predict(images_), atol=1e-6)


BAD_CONSTITUENTS = {
    "wrong last axis": (np.ones((2, 5, 4)), "expected (batch, any, 3)"),
    "wrong rank": (np.ones((5, 3)), "expected (batch, any, 3)"),
    "NaN": (np.where(np.eye(3)[None, :, :] > 0, np.nan, 1.0), "NaN"),
    "negative p_T": (np.array([[[-5.0, 0.0, 0.0], [10.0, 0.1, 0.1]]]), "negative p_T"),
    "all-zero jet": (np.array([[[10.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]]), "no constituent of p_T > 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONSTITUENTS))
def test_bad_constituents_get_a_clear_error(tiny_tagger, case):
    value, message = BAD_CONSTITUENTS[case]
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tiny_tagger.preprocess(value)


def test_images_of_the_wrong_size_or_sign_get_a_clear_error(tiny_tagger):
    with pytest.raises(ValueError, match=r"expected \(batch, 25, 25\)"):
        tiny_tagger.predict(np.zeros((2, 32, 32), "float32"))
    with pytest.raises(ValueError, match="negative pixels"):
        tiny_tagger.predict(-np.ones((2, 25, 25), "float32"))


def test_the_graph_check_refuses_what_the_numpy_check_refuses(tiny_tagger):
    """The exported signatures run the check's graph form: it refuses the same jets and passes good ones."""
    check = tiny_tagger.endpoint("constituents").check
    graph = tf.function(lambda c: check.graph({"constituents": c})["constituents"])
    for case in ("negative p_T", "all-zero jet"):
        with pytest.raises(tf.errors.InvalidArgumentError):
            graph(tf.constant(BAD_CONSTITUENTS[case][0], tf.float32))
    good = toy_jets(2)
    np.testing.assert_array_equal(graph(tf.constant(good)).numpy(), good)


def test_finetuning_data_may_hold_raw_constituents(tiny_tagger, tmp_path):
    """`zoo finetune` takes constituents as well as images: the preprocess endpoint makes the images."""
    from training.finetune import read_data

    c = toy_jets(6, seed=4)
    labels = np.array([1, 0, 1, 0, 1, 0])
    np.savez(tmp_path / "raw.npz", constituents=c, target=labels)
    np.savez(tmp_path / "images.npz", images=tiny_tagger.preprocess(c), target=labels)
    raw_inputs, raw_target = read_data(tmp_path / "raw.npz", tiny_tagger)
    image_inputs, _ = read_data(tmp_path / "images.npz", tiny_tagger)
    assert sorted(raw_inputs) == ["images"]
    np.testing.assert_array_equal(raw_inputs["images"], image_inputs["images"])
    np.testing.assert_array_equal(raw_target, labels.reshape(-1, 1))
