"""A small client for TF Serving's REST API (the zoo's local server or TF Serving itself)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request


class ServingError(RuntimeError):
    """The server answered with an error status; ``status`` and the server's message are kept."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


class RestClient:
    """``RestClient("http://127.0.0.1:8501").predict("scinet-heliocentric", instances=[[0.5, 1.0]])``."""

    def __init__(self, base_url: str = "http://127.0.0.1:8501", timeout: float = 30.0):
        self.base_url, self.timeout = base_url.rstrip("/"), timeout

    def _model_path(self, name, version=None, label=None) -> str:
        if version is not None and label is not None:
            raise ValueError("give a version or a label, not both")
        path = f"/v1/models/{name}"
        if version is not None:
            path += f"/versions/{int(version)}"
        elif label is not None:
            path += f"/labels/{label}"
        return path

    def _request(self, path, body=None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            payload = e.read()
            try:
                message = json.loads(payload).get("error", payload.decode())
            except (json.JSONDecodeError, AttributeError):
                message = payload.decode(errors="replace")
            raise ServingError(e.code, message) from None

    def status(self, name, version=None, label=None) -> dict:
        return self._request(self._model_path(name, version, label))

    def metadata(self, name, version=None, label=None) -> dict:
        return self._request(self._model_path(name, version, label) + "/metadata")

    def signatures(self, name, version=None, label=None) -> dict:
        """Signature name -> {"inputs", "outputs", "method_name"}: the endpoints the model declares."""
        return self.metadata(name, version, label)["metadata"]["signature_def"]["signature_def"]

    def predict_arrays(self, name, inputs: dict, signature_name=None, version=None, label=None) -> dict:
        """Named numpy inputs in, numpy outputs keyed by output name back: what ``GrpcClient.predict`` returns."""
        import numpy as np

        outputs = self.predict(name, inputs=inputs, signature_name=signature_name, version=version, label=label)
        if not isinstance(outputs, dict):  # TF Serving drops the key of a single output
            declared = self.signatures(name, version, label)[signature_name or "serving_default"]["outputs"]
            outputs = {next(iter(declared)): outputs}
        return {k: np.asarray(v, dtype="float32") for k, v in outputs.items()}

    def predict(self, name, instances=None, inputs=None, signature_name=None, version=None, label=None):
        """Row format with ``instances`` (returns predictions) or columnar with ``inputs`` (returns outputs)."""
        if (instances is None) == (inputs is None):
            raise ValueError("give exactly one of instances= (row format) or inputs= (columnar format)")
        body = {"instances": _lists(instances)} if instances is not None else {"inputs": _lists(inputs)}
        if signature_name:
            body["signature_name"] = signature_name
        answer = self._request(self._model_path(name, version, label) + ":predict", body)
        return answer["predictions"] if instances is not None else answer["outputs"]


def _lists(value):
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value.tolist() if hasattr(value, "tolist") else value


class GrpcClient:
    """TF Serving's gRPC PredictionService: ``GrpcClient("127.0.0.1:8500").predict(name, {"initial_angles": x})``."""

    def __init__(self, target: str = "127.0.0.1:8500", timeout: float = 30.0):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.channel = grpc.insecure_channel(target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.timeout = timeout

    def _spec(self, spec, name, signature_name=None, version=None, label=None):
        spec.name = name
        if signature_name:
            spec.signature_name = signature_name
        if version is not None:
            spec.version.value = int(version)
        if label is not None:
            spec.version_label = label

    def predict(self, name, inputs: dict, signature_name=None, version=None, label=None) -> dict:
        """Named numpy inputs in, named numpy outputs back."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, name, signature_name, version, label)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        response = self.stub.Predict(request, timeout=self.timeout)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

    def signatures(self, name, version=None, label=None) -> dict:
        """Signature name -> SignatureDef, from GetModelMetadata."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, name, None, version, label)
        response = self.stub.GetModelMetadata(request, timeout=self.timeout)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return dict(signature_map.signature_def)

    def close(self):
        self.channel.close()
