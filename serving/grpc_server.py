"""TF Serving's gRPC PredictionService (Predict, GetModelMetadata) over the same model repository.

Uses the message definitions of ``tensorflow-serving-api`` (installed with
``--no-deps``), so gRPC clients written for TF Serving work unchanged.
"""
from __future__ import annotations

from concurrent import futures

import grpc
import tensorflow as tf
from tensorflow.core.framework import types_pb2
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


VALUE_FIELDS = ("half_val", "float_val", "double_val", "int_val", "int64_val", "bool_val", "string_val",
                "uint32_val", "uint64_val")


def checked_ndarray(key: str, proto, max_elements: int):
    """``tf.make_ndarray`` of a request tensor, after checking what it claims against what it carries.

    The declared shape is bounded by ``max_elements`` and must be matched exactly by the values
    sent (TF would otherwise broadcast one value over any claimed size and allocate it).
    """
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise BadRequest(f"input '{key}' declares a negative dimension {dims}")
    claimed = 1
    for d in dims:
        claimed *= d
        if claimed > max_elements:
            raise BadRequest(f"input '{key}' declares shape {dims}, more than the {max_elements} elements a request may hold")
    if proto.tensor_content:
        itemsize = tf.dtypes.as_dtype(proto.dtype).size if proto.dtype else 0
        supplied = len(proto.tensor_content) // itemsize if itemsize else -1
    else:
        supplied = max(len(getattr(proto, field)) for field in VALUE_FIELDS)
    if supplied != claimed:
        raise BadRequest(f"input '{key}' declares shape {dims} ({claimed} values) but carries {supplied}")
    if proto.dtype not in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_HALF, types_pb2.DT_INT32, types_pb2.DT_INT64):
        raise BadRequest(f"input '{key}' has dtype {types_pb2.DataType.Name(proto.dtype)}; expected numbers (DT_FLOAT)")
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as e:
        raise BadRequest(f"input '{key}' cannot be read: {e}") from None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repo: ModelRepository, max_rows: int = 65536, max_elements: int = 1 << 24):
        self.repo, self.max_rows, self.max_elements = repo, max_rows, max_elements

    def Predict(self, request, context):
        try:
            servable = _resolve(self.repo, request.model_spec)
            signature = servable.signature(request.model_spec.signature_name or None)
            values = {k: checked_ndarray(k, v, self.max_elements) for k, v in request.inputs.items()}
            arrays = signature.check(request.model_spec.signature_name or "serving_default", values,
                                     max_rows=self.max_rows, from_json=False)
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


def start_grpc_server(repo: ModelRepository, host: str = "127.0.0.1", port: int = 8500, workers: int = 8,
                      max_rows: int = 65536, max_message_bytes: int = 16 << 20):
    """Start the gRPC server in background threads; returns (server, bound port)."""
    options = [("grpc.max_receive_message_length", max_message_bytes)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
    service = PredictionService(repo, max_rows=max_rows, max_elements=max_message_bytes // 2)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound
