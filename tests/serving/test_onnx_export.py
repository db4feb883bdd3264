"""ONNX exports: every endpoint ONNX can express answers in ONNX Runtime as the Keras model does, every
declared refusal is real, and a failed export leaves nothing behind."""
import json

import numpy as np
import pytest

import zoo
from serving import onnx_export
from serving.onnx_export import OnnxExportError, convert_endpoint, export_onnx_preset

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

PRESETS = zoo.list_models()
# one shipped preset per family whose weights go through the whole command (CaloGAN has no ONNX endpoint; the
# flows' converted graphs take 40 s at full size, and their tiny ones are checked below)
SHIPPED = ["scinet-heliocentric", "ising-cnn", "rbm-ising-L8-T2.27", "siamese-minkowski", "jet-cnn-w-vs-qcd",
           "translator-schrodinger"]
# one endpoint of each kind of refusal: a sampler (seeded, and Gibbs), the jet imaging loop, the distiller's rollout
REFUSING = ["realnvp-phi4-L8", "rbm-ising-L8-T2.27", "jet-cnn-w-vs-qcd", "distiller-schrodinger-k2"]
# the hierarchical flows' graphs grow with L (one RG level per factor 2); at L = 4 both kinds of level remain
SMALLER = {"neuralrg-ising-L16": {"L": 4}, "neuralrg-phi4-complex-L32": {"L": 4}}


def tiny(name):
    import keras

    keras.utils.set_random_seed(0)
    family = zoo.get_family(zoo.get_spec(name).family)
    return zoo.load(name, pretrained=False, **family.tiny_config(zoo.get_spec(name)), **SMALLER.get(name, {}))


def run_onnx(model_bytes: bytes, inputs: dict) -> dict:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})))


def assert_close(actual: dict, expected: dict) -> None:
    """Within 1e-4 of each output's scale: float32 kernels of two runtimes (another summation order, fused
    multiply-adds) differ by a few ulp per operation, ~1e-6 after tens of layers; 1e-4 leaves room for
    the flows' stacked couplings, not for a wrong graph."""
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        value = np.asarray(value)
        scale = max(1.0, float(np.max(np.abs(value)))) if value.size else 1.0
        np.testing.assert_allclose(actual[key], value, rtol=0, atol=1e-4 * scale, err_msg=key)


@pytest.mark.parametrize("name", PRESETS)
def test_every_endpoint_onnx_can_express_answers_as_keras(name):
    model = tiny(name)
    exportable = [e for e in model.endpoints() if not e.onnx_refusal]
    for endpoint in exportable:
        inputs = model.random_inputs(3, seed=3, endpoint=endpoint.name)
        assert_close(run_onnx(convert_endpoint(endpoint), inputs), model.run_endpoint(endpoint.name, inputs))


@pytest.mark.parametrize("name", REFUSING)
def test_every_declared_refusal_is_real(name):
    """An endpoint said to have no ONNX export fails to convert today: the declaration is not stale (a preset's
    refusing endpoints share one reason, so its first stands for the others)."""
    endpoint = next(e for e in tiny(name).endpoints() if e.onnx_refusal)
    with pytest.raises(OnnxExportError, match=f"endpoint '{endpoint.name}' cannot be exported as ONNX: "):
        convert_endpoint(endpoint)


@pytest.mark.parametrize("name", SHIPPED)
def test_the_command_exports_shipped_weights_with_their_contract(name, tmp_path):
    from zoo_cli import main

    assert main(["export", name, "--format", "onnx", "--out", str(tmp_path), "--quiet"]) == 0
    folder = tmp_path / name
    metadata = json.loads((folder / onnx_export.METADATA_FILE).read_text())
    model = zoo.load(name)
    assert metadata["preset"] == name and metadata["weights_sha256"] == model.preset.weights_sha256
    assert sorted(metadata["endpoints"]) + sorted(metadata["not_exported"]) == sorted(
        [e.name for e in model.endpoints() if not e.onnx_refusal]) + sorted(
        [e.name for e in model.endpoints() if e.onnx_refusal])
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [onnx_export.METADATA_FILE] + [f"{e}.onnx" for e in metadata["endpoints"]])
    for endpoint, record in metadata["endpoints"].items():
        inputs = model.random_inputs(4, seed=5, endpoint=endpoint)
        assert list(record["inputs"]) == list(inputs)
        assert_close(run_onnx((folder / record["file"]).read_bytes(), inputs), model.run_endpoint(endpoint, inputs))


def test_the_typed_inputs_refuse_a_wrong_dtype_and_rank(tmp_path):
    folder = export_onnx_preset("scinet-pendulum", tmp_path)
    session = ort.InferenceSession(str(folder / "encode.onnx"), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="(?i)type|dtype"):
        session.run(None, {"observations": np.zeros((2, 50), np.float64)})
    with pytest.raises(Exception, match="(?i)rank|dimension|shape"):
        session.run(None, {"observations": np.zeros((2, 50, 1), np.float32)})


def test_a_preset_with_no_expressible_endpoint_is_refused_naming_each(tmp_path):
    with pytest.raises(OnnxExportError) as refused:
        export_onnx_preset("calogan-eplus", tmp_path)
    message = str(refused.value)
    assert "serving_default:" in message and "generate:" in message and "StatelessRandom" in message
    assert list(tmp_path.iterdir()) == []


def test_a_failed_endpoint_leaves_nothing_half_written(tmp_path, monkeypatch):
    real = onnx_export.convert_endpoint

    def fail_on_encode(endpoint):
        if endpoint.name == "encode":
            raise OnnxExportError("endpoint 'encode' cannot be exported as ONNX: operation Fake: injected")
        return real(endpoint)

    monkeypatch.setattr(onnx_export, "convert_endpoint", fail_on_encode)
    with pytest.raises(OnnxExportError, match="endpoint 'encode'.*operation Fake"):
        export_onnx_preset("scinet-pendulum", tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    export_onnx_preset("scinet-pendulum", tmp_path)
    with pytest.raises(FileExistsError, match="already exists"):
        export_onnx_preset("scinet-pendulum", tmp_path)


def test_a_converter_error_names_the_operation():
    error = RuntimeError('[ONNXRuntimeError] : 10 : INVALID_GRAPH : In Node, ("Log1p", Log1p, "", -1) : ...')
    assert onnx_export.failing_operation(error).startswith("operation Log1p: ")
    assert onnx_export.failing_operation(ValueError("")) == "ValueError: ValueError"


def test_savedmodel_options_are_refused_with_onnx(tmp_path, capsys):
    from zoo_cli import main

    assert main(["export", "ising-cnn", "--format", "onnx", "--out", str(tmp_path), "--version", "2"]) != 0
    assert "--format onnx writes NAME/ENDPOINT.onnx" in capsys.readouterr().err


def test_zoo_info_names_the_endpoints_without_onnx_and_why(capsys):
    from zoo_cli import main

    assert main(["info", "realnvp-phi4-L8"]) == 0
    out = capsys.readouterr().out
    sample = out[out.index("endpoint sample:"):out.index("endpoint action:")]
    assert "(no ONNX export: a sampler" in sample
    assert "no ONNX export" not in out[out.index("endpoint action:"):]
