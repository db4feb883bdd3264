"""TF Serving's gRPC PredictionService (Predict, GetModelMetadata) over the same model repository.

Uses the message definitions of ``tensorflow-serving-api`` (installed with
``--no-deps``), so gRPC clients written for TF Serving work unchanged.
"""
from __future__ import annotations

from concurrent import futures

import grpc
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from serving.repository import BadRequest, ModelRepository, NotFound


def _resolve(repo: ModelRepository, spec):
    version = spec.version.value if spec.HasField("version") else None
    label = spec.version_label or None
    return repo.resolve(spec.name, version, label)


def signature_def(signature) -> meta_graph_pb2.SignatureDef:
    definition = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for target, specs in ((definition.inputs, signature.inputs), (definition.outputs, signature.outputs)):
        for key, spec in specs.items():
            target[key].name = spec.name or key
            target[key].dtype = spec.dtype.as_datatype_enum
            target[key].tensor_shape.CopyFrom(spec.shape.as_proto())
    return definition


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repo: ModelRepository):
        self.repo = repo

    def Predict(self, request, context):
        try:
            servable = _resolve(self.repo, request.model_spec)
            signature = servable.signature(request.model_spec.signature_name or None)
            values = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            arrays = signature.check(request.model_spec.signature_name or "serving_default", values)
            outputs = signature(arrays)
        except NotFound as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except BadRequest as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):
        if list(request.metadata_field) != ["signature_def"]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"metadata_field must be ['signature_def'], received {list(request.metadata_field)}")
        try:
            servable = _resolve(self.repo, request.model_spec)
        except NotFound as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in servable.signatures.items():
            signatures.signature_def[name].CopyFrom(signature_def(signature))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].Pack(signatures)
        return response


def start_grpc_server(repo: ModelRepository, host: str = "127.0.0.1", port: int = 8500, workers: int = 8):
    """Start the gRPC server in background threads; returns (server, bound port)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(repo), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound
