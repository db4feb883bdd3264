"""The served contract for the costly endpoints (seeded samplers, free axes): no request stalls the others,
every request's output is bounded before it runs, and one input gets one answer in Python, REST and gRPC."""
import concurrent.futures
import json
import os
import threading

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import zoo  # noqa: E402
from serving import repository, server  # noqa: E402
from serving.export import SIGNATURES_FILE, export_model  # noqa: E402
from serving.server import BatchingParameters, create_app, encode_response  # noqa: E402

FLOW, TRANSLATOR, JETS, GAN, CNN = ("realnvp-phi4-L8", "translator-schrodinger", "jet-cnn-w-vs-qcd", "calogan-eplus",
                                    "ising-cnn")
TIMEOUT = 120  # a guard against a hang, never a measure of speed


def tiny(name):
    spec = zoo.get_spec(name)
    return zoo.load(name, pretrained=False, **zoo.get_family(spec.family).tiny_config(spec))


@pytest.fixture(scope="module")
def models():
    return {name: tiny(name) for name in (FLOW, TRANSLATOR, JETS, GAN, CNN)}


@pytest.fixture(scope="module")
def base(models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    for name, model in models.items():
        export_model(model, folder / name / "1")
    return folder


@pytest.fixture(scope="module")
def client(base):
    with TestClient(create_app(base, poll_seconds=0)) as c:
        yield c


@pytest.fixture(scope="module")
def batching_client(base):
    with TestClient(create_app(base, poll_seconds=0, batching=BatchingParameters(64, 2000))) as c:
        yield c


def post(client, name, body):
    return client.post(f"/v1/models/{name}:predict", json=body)


def toy_jets(n=2, m=12, seed=0):
    rng = np.random.default_rng(seed)
    c = np.zeros((n, m, 3), "float32")
    c[..., 0] = rng.exponential(10.0, (n, m)) + 1.0
    c[..., 1] = rng.normal(0.3, 0.3, (n, m))
    c[..., 2] = rng.normal(1.0, 0.3, (n, m))
    return c


# ------------------------------------------------------------------ 1. a costly request never holds the event loop

def test_a_costly_request_with_a_small_body_leaves_other_clients_answered(base, monkeypatch):
    """The costly request blocks inside its model call until the test releases it; meanwhile a model status GET
    and a cheap predict must be answered. Run on the event loop (as small bodies were), it would hold them all."""
    release, entered = threading.Event(), threading.Event()
    real_call = repository.Signature.__call__

    def held(self, arrays, rows_per_call=repository.CALL_ROWS):
        if "seed" in arrays and len(arrays["seed"]) == 300:
            entered.set()
            release.wait(TIMEOUT)
        return real_call(self, arrays, rows_per_call)

    monkeypatch.setattr(repository.Signature, "__call__", held)
    with TestClient(create_app(base, poll_seconds=0)) as c, concurrent.futures.ThreadPoolExecutor(1) as pool:
        costly = pool.submit(post, c, FLOW, {"signature_name": "sample", "inputs": {"seed": list(range(300))}})
        assert entered.wait(TIMEOUT)
        status = c.get(f"/v1/models/{CNN}")
        cheap = post(c, CNN, {"instances": np.ones((1, 8, 8)).tolist()})
        assert not costly.done()
        release.set()
        assert status.status_code == 200 and cheap.status_code == 200
        assert costly.result(TIMEOUT).status_code == 200


def test_where_a_request_runs_follows_its_cost_not_its_body(base):
    """A few bytes asking for many draws of a slow endpoint go to a worker thread in small model calls; a cheap
    request of the same size is answered inline."""
    repo = repository.ModelRepository(base)
    predictor = server.RestPredictor(repo, None, max_rows=65536, max_output_elements=1 << 30)
    signature = repo.resolve(FLOW).signature("sample")
    signature.declared = {**signature.declared, "seconds_per_unit": 0.01}  # as a large flow's sampler costs
    costly = predictor.prepare(FLOW, None, None, json.dumps({"signature_name": "sample",
                                                              "inputs": {"seed": list(range(3000))}}).encode())
    assert not costly.inline and costly.rows_per_call == 2  # 20 ms model calls of 10 ms rows
    cheap = predictor.prepare(CNN, None, None, json.dumps({"instances": np.ones((1, 8, 8)).tolist()}).encode())
    assert cheap.inline


def test_large_outputs_are_written_in_chunks_that_join_to_the_whole(monkeypatch):
    monkeypatch.setattr(server, "ENCODE_CHUNK_ELEMENTS", 7)
    rng = np.random.default_rng(0)
    outputs = {"a": rng.normal(size=(10, 3)).astype("float32"), "b": rng.normal(size=(10,)).astype("float32")}
    for layout in ("row", "columnar"):
        whole = json.loads(server.encode_json(server.format_outputs(outputs, layout)))
        assert json.loads(encode_response(outputs, layout)) == whole
    single = {"a": outputs["a"]}
    assert json.loads(encode_response(single, "row")) == json.loads(server.encode_json({"predictions": outputs["a"]}))


# ------------------------------------------------------------------ 2. every request's output is bounded before it runs

def test_outputs_past_the_bound_are_refused_before_the_model_runs(base, monkeypatch):
    calls = []
    real_call = repository.Signature._call
    monkeypatch.setattr(repository.Signature, "_call", lambda self, *a: calls.append(1) or real_call(self, *a))
    with TestClient(create_app(base, poll_seconds=0, max_output_elements=5_000)) as c:
        hidden = tiny(TRANSLATOR).hidden_size
        response = post(c, TRANSLATOR, {"signature_name": "hidden_states", "inputs": np.full((2, 1000), -1.0).tolist()})
        assert response.status_code == 400 and calls == []
        message = response.json()["error"]
        assert f"{2 * 1000 * hidden:,} output elements" in message and "5,000" in message
        assert "--max-output-elements" in message
        ok = post(c, TRANSLATOR, {"inputs": np.full((2, 1000), -1.0).tolist()})  # densities: 2000 elements
        assert ok.status_code == 200 and np.shape(ok.json()["outputs"]) == (2, 1000)


@pytest.mark.parametrize("name", [FLOW, TRANSLATOR, JETS, GAN, CNN])
def test_declared_output_sizes_are_the_sizes_answered(base, models, name):
    """The server's count of a request's outputs, made before it runs, equals what the model then answers."""
    servable = repository.ModelRepository(base).resolve(name)
    model = models[name]
    for endpoint in model.endpoints():
        arrays = {k: np.asarray(v) for k, v in model.random_inputs(3, endpoint=endpoint.name).items()}
        signature = servable.signature(endpoint.name)
        outputs = signature(arrays)
        assert signature.output_elements(arrays) == sum(v.size for v in outputs.values()), endpoint.name


# ------------------------------------------------------------------ 4. an empty batch: one answer everywhere

EMPTY = "The batch is empty"


@pytest.mark.parametrize("name,body", [
    (FLOW, {"signature_name": "sample", "inputs": {"seed": []}}),
    (FLOW, {"inputs": []}),
    (GAN, {"signature_name": "generate", "inputs": {"energies": [], "seed": []}}),
    (TRANSLATOR, {"instances": []}),
    (JETS, {"signature_name": "constituents", "inputs": []}),
    (CNN, {"instances": []}),
])
def test_an_empty_batch_is_the_same_400_batched_or_not(client, batching_client, name, body):
    for c in (client, batching_client, batching_client):
        response = post(c, name, body)
        assert response.status_code == 400 and response.json()["error"].startswith(EMPTY), response.text


def test_an_empty_batch_is_a_value_error_in_python(models):
    with pytest.raises(ValueError, match=EMPTY):
        models[GAN].generate(np.zeros(0, "float32"), seed=1)
    with pytest.raises(ValueError, match=EMPTY):
        models[JETS].tag_constituents(np.zeros((0, 10, 3), "float32"))
    with pytest.raises(ValueError, match=EMPTY):
        models[TRANSLATOR].predict(np.zeros((0, 50), "float32"))


def test_an_empty_batch_in_the_exported_graph_names_the_batch(base):
    import tensorflow as tf

    function = tf.saved_model.load(str(base / GAN / "1")).signatures["generate"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=EMPTY):
        function(energies=tf.zeros([0]), seed=tf.zeros([0], tf.int64))


# ------------------------------------------------------------------ 5. valid and trained ranges, non-finite outputs

def test_jets_far_outside_the_detector_are_refused_everywhere(client, models):
    shifted = toy_jets()
    shifted[..., 1] += 20.0
    response = post(client, JETS, {"signature_name": "constituents", "inputs": shifted.tolist()})
    assert response.status_code == 400 and "the valid range is [-5, 5]" in response.json()["error"], response.text
    with pytest.raises(ValueError, match=r"the valid range is \[-5, 5\]"):
        models[JETS].tag_constituents(shifted)


def test_energies_beyond_the_valid_range_are_refused_and_outside_the_trained_range_warned(client, models):
    seeds = [1, 2]
    response = post(client, GAN, {"signature_name": "generate", "inputs": {"energies": [50.0, 1e6], "seed": seeds}})
    assert response.status_code == 400 and "'energies' of rows [1] holds [1000000]" in response.json()["error"]
    warned = post(client, GAN, {"signature_name": "generate", "inputs": {"energies": [50.0, 150.0], "seed": seeds}})
    assert warned.status_code == 200
    assert "trained range" in warned.headers["warning"] and "rows [1]" in warned.json()["warnings"][0]
    with pytest.warns(UserWarning, match="trained range"):
        models[GAN].generate(np.array([50.0, 150.0], "float32"), seed=1)
    with pytest.raises(ValueError, match="valid range"):
        models[GAN].generate(np.array([50.0, 1e6], "float32"), seed=1)


def test_answers_inside_the_trained_range_carry_no_warning(client):
    response = post(client, GAN, {"signature_name": "generate", "inputs": {"energies": [50.0], "seed": [1]}})
    assert response.status_code == 200 and "warning" not in response.headers and "warnings" not in response.json()


def test_non_finite_outputs_are_written_as_tf_serving_writes_them():
    outputs = {"action": np.array([np.inf, -np.inf, np.nan, 1.5], "float32")}
    assert encode_response(outputs, "columnar") == b'{"outputs":[Infinity,-Infinity,NaN,1.5]}'
    rows = {"a": np.array([np.nan, 2.0], "float32"), "b": np.array([[1.0, np.inf], [-np.inf, 0.0]], "float32")}
    assert encode_response(rows, "row") == (b'{"predictions":[{"a":NaN,"b":[1.0,Infinity]},'
                                            b'{"a":2.0,"b":[-Infinity,0.0]}]}')


def test_an_overflowing_action_is_answered_as_infinity_not_null(client):
    fields = np.full((1, 8, 8), 1e15, "float32")
    response = post(client, FLOW, {"signature_name": "action", "inputs": fields.tolist()})
    assert response.status_code == 200 and response.content.endswith(b"[Infinity]}"), response.text


# ------------------------------------------------------------------ 6. messages name what was received

def test_graph_checks_name_the_values_they_received(client):
    response = post(client, FLOW, {"signature_name": "sample", "inputs": {"seed": [3, -4, -5]}})
    assert response.status_code == 400 and "-4" in response.json()["error"] and "-5" in response.json()["error"]


def test_free_axes_are_not_called_batch(client):
    response = post(client, JETS, {"signature_name": "constituents", "inputs": np.ones((2, 5, 4)).tolist()})
    assert response.status_code == 400 and "(batch, any, 3)" in response.json()["error"], response.text


@pytest.mark.parametrize("seed,message", [(2**63, "beyond int64's range"), (2**64, "beyond int64's range")])
def test_seeds_beyond_int64_are_named_as_such(client, seed, message):
    response = client.post(f"/v1/models/{FLOW}:predict", content=b'{"signature_name": "sample", "inputs": {"seed": [%d]}}'
                           % seed, headers={"content-type": "application/json"})
    assert response.status_code == 400 and message in response.json()["error"], response.text


# ------------------------------------------------------------------ 3. gRPC: values in the wrong field

@pytest.fixture(scope="module")
def grpc_stub(base):
    grpc = pytest.importorskip("grpc")
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from serving.grpc_server import start_grpc_server

    started, port = start_grpc_server(repository.ModelRepository(base), port=0, max_send_bytes=64 << 10)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()
    started.stop(grace=None)


def grpc_request(name, signature, tensors):
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = name, signature
    for key, proto in tensors.items():
        request.inputs[key].CopyFrom(proto)
    return request


def tensor(dtype, shape, **values):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    proto = tensor_pb2.TensorProto(dtype=getattr(types_pb2, dtype), **values)
    proto.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(dim=[{"size": d} for d in shape]))
    return proto


@pytest.mark.parametrize("name,signature,tensors,field", [
    (TRANSLATOR, "serving_default", {"potentials": ("DT_FLOAT", [1, 3], {"double_val": [-1.0, -2.0, -3.0]})},
     "double_val"),
    (FLOW, "sample", {"seed": ("DT_INT64", [2], {"float_val": [1.0, 2.0]})}, "float_val"),
])
def test_grpc_values_in_the_wrong_field_are_invalid_argument(grpc_stub, name, signature, tensors, field):
    import grpc

    request = grpc_request(name, signature, {k: tensor(d, s, **v) for k, (d, s, v) in tensors.items()})
    with pytest.raises(grpc.RpcError) as e:
        grpc_stub.Predict(request, timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in e.value.details()


def test_grpc_empty_batch_and_large_reply(grpc_stub):
    import grpc

    with pytest.raises(grpc.RpcError) as e:
        grpc_stub.Predict(grpc_request(FLOW, "sample", {"seed": tensor("DT_INT64", [0])}), timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and e.value.details().startswith(EMPTY)
    many = tensor("DT_INT64", [1000], int64_val=list(range(1000)))  # 65,000 floats: past the 64 KiB reply bound
    with pytest.raises(grpc.RpcError) as e:
        grpc_stub.Predict(grpc_request(FLOW, "sample", {"seed": many}), timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "--grpc-max-send-bytes" in e.value.details()


def test_grpc_answers_what_rest_answers_with_the_warning(grpc_stub, client):
    energies, seeds = np.array([50.0, 150.0], "float32"), np.array([4, 5], "int64")
    call = grpc_stub.Predict.with_call(grpc_request(GAN, "generate", {
        "energies": tensor("DT_FLOAT", [2], float_val=energies.tolist()),
        "seed": tensor("DT_INT64", [2], int64_val=seeds.tolist())}), timeout=TIMEOUT)
    import tensorflow as tf

    reply, rpc = call
    rest = post(client, GAN, {"signature_name": "generate",
                              "inputs": {"energies": energies.tolist(), "seed": seeds.tolist()}}).json()
    np.testing.assert_array_equal(tf.make_ndarray(reply.outputs["layer_1"]), np.float32(rest["outputs"]["layer_1"]))
    assert any(key == "zoo-warning" and "trained range" in value for key, value in rpc.trailing_metadata())


def test_the_export_declares_each_signature(base):
    declared = json.loads((base / JETS / "1" / SIGNATURES_FILE).read_text())
    assert declared["constituents"]["scaling_axes"] == [["constituents", 1]]
    assert declared["constituents"]["inputs"]["constituents"]["valid_range"] == [[1, -5.0, 5.0]]
    assert declared["constituents"]["seconds_per_unit"] > 0


# ------------------------------------------------------------------ the same answer in Python, REST and gRPC, fuzzed


FUZZ = settings(max_examples=int(os.environ.get("ZOO_FUZZ_EXAMPLES", 40)), deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
ENERGIES = st.lists(st.sampled_from([-1.0, 0.0, 0.5, 50.0, 150.0, 200.0, 201.0, 1e6]), max_size=3)
SEEDS = st.sampled_from([0, 5, -1, 2**62])
POTENTIAL_VALUES = st.sampled_from([-1.0, -40.0, 0.0, 5.0])


def python_answer(call) -> str:
    try:
        call()
    except ValueError:
        return "refused"
    return "answered"


def rest_answer(client, name, body) -> str:
    status = post(client, name, body).status_code
    assert status in (200, 400), status
    return "answered" if status == 200 else "refused"


def grpc_answer(stub, name, signature, tensors) -> str:
    import grpc

    try:
        stub.Predict(grpc_request(name, signature, tensors), timeout=TIMEOUT)
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
        return "refused"
    return "answered"


@FUZZ
@given(energies=ENERGIES, seed=SEEDS)
def test_showers_are_refused_or_answered_alike_everywhere(models, client, grpc_stub, energies, seed):
    seeds = [seed] * len(energies)
    e = np.array(energies, "float32")
    python = python_answer(lambda: models[GAN].generate(e, seed=np.array(seeds, "int64")))
    rest = rest_answer(client, GAN, {"signature_name": "generate", "inputs": {"energies": energies, "seed": seeds}})
    grpc_ = grpc_answer(grpc_stub, GAN, "generate", {"energies": tensor("DT_FLOAT", [len(e)], float_val=energies),
                                                     "seed": tensor("DT_INT64", [len(e)], int64_val=seeds)})
    assert python == rest == grpc_, (energies, seeds, python, rest, grpc_)


@FUZZ
@given(rows=st.integers(0, 2), sites=st.integers(0, 3), value=POTENTIAL_VALUES)
def test_potentials_are_refused_or_answered_alike_everywhere(models, client, grpc_stub, rows, sites, value):
    v = np.full((rows, sites), value, "float32")
    python = python_answer(lambda: models[TRANSLATOR].predict(v))
    rest = rest_answer(client, TRANSLATOR, {"inputs": v.tolist()} if rows else {"inputs": []})
    grpc_ = grpc_answer(grpc_stub, TRANSLATOR, "serving_default",
                        {"potentials": tensor("DT_FLOAT", [rows, sites], float_val=v.ravel().tolist())})
    if rows:  # an empty list over REST cannot say how many sites it has: it is the empty batch either way
        assert python == rest == grpc_, (v.shape, value, python, rest, grpc_)
    else:
        assert python == rest == grpc_ == "refused"


DTYPES = ["DT_FLOAT", "DT_DOUBLE", "DT_INT32", "DT_INT64", "DT_HALF", "DT_STRING", "DT_BOOL"]
FIELDS = ["float_val", "double_val", "int_val", "int64_val", "half_val", "bool_val"]


@FUZZ
@given(dtype=st.sampled_from(DTYPES), field=st.sampled_from(FIELDS), size=st.integers(0, 3),
       name=st.sampled_from([(FLOW, "sample", "seed"), (TRANSLATOR, "serving_default", "potentials"),
                             (JETS, "constituents", "constituents")]))
def test_grpc_fuzzed_tensors_are_answered_or_invalid_never_misread(grpc_stub, dtype, field, size, name):
    """Any dtype, any value field, any size (zero rows included): OK only when the field is the dtype's own and
    the values fit the signature; a value in another field is never read as zero."""
    import grpc

    from serving.grpc_server import FIELD_OF_DTYPE
    from tensorflow.core.framework import types_pb2

    model, signature, key = name
    shape = {"seed": [size], "potentials": [1, size], "constituents": [1, size, 3]}[key]
    count = int(np.prod(shape))
    values = {"bool_val": [True] * count}.get(field, [1] * count)
    try:
        reply = grpc_stub.Predict(grpc_request(model, signature, {key: tensor(dtype, shape, **{field: values})}),
                                  timeout=TIMEOUT)
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
        return
    assert count > 0 and FIELD_OF_DTYPE[getattr(types_pb2, dtype)] == field, (dtype, field, shape)
    assert reply.outputs
