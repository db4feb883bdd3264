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


class ReplyTooLarge(Exception):
    """A reply larger than a gRPC client may receive (RESOURCE_EXHAUSTED)."""


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
FIELD_OF_DTYPE = {types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val", types_pb2.DT_HALF: "half_val",
                  types_pb2.DT_INT32: "int_val", types_pb2.DT_INT64: "int64_val"}


def _supplied_values(key: str, proto) -> int:
    """How many values a request tensor carries, all in the one place its dtype reads them from: values in
    another field would be read as zeros by ``tf.make_ndarray``, so they are refused, naming the field."""
    expected = FIELD_OF_DTYPE.get(proto.dtype)
    if expected is None:
        raise BadRequest(f"input '{key}' has dtype {types_pb2.DataType.Name(proto.dtype)}; expected one of "
                         f"{sorted(types_pb2.DataType.Name(d) for d in FIELD_OF_DTYPE)}")
    stray = [field for field in VALUE_FIELDS if field != expected and len(getattr(proto, field))]
    if stray:
        raise BadRequest(f"input '{key}' of dtype {types_pb2.DataType.Name(proto.dtype)} carries values in {stray[0]}; "
                         f"a {types_pb2.DataType.Name(proto.dtype)} tensor's values go in {expected} or tensor_content")
    if proto.tensor_content:
        if len(getattr(proto, expected)):
            raise BadRequest(f"input '{key}' carries values in both tensor_content and {expected}; send one")
        return len(proto.tensor_content) // tf.dtypes.as_dtype(proto.dtype).size
    return len(getattr(proto, expected))


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
    supplied = _supplied_values(key, proto)
    if supplied != claimed:
        raise BadRequest(f"input '{key}' declares shape {dims} ({claimed} values) but carries {supplied}")
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as e:
        raise BadRequest(f"input '{key}' cannot be read: {e}") from None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata with the REST server's checks and bounds: the same request gets the same
    answer (INVALID_ARGUMENT where REST answers 400), and a reply larger than ``max_send_bytes`` is refused
    (RESOURCE_EXHAUSTED) before the model runs. Trained-range warnings come back as ``zoo-warning`` trailing
    metadata."""

    def __init__(self, repo: ModelRepository, max_rows: int = 65536, max_elements: int = 1 << 24,
                 max_output_elements: int = 8 << 20, max_send_bytes: int = 4 << 20):
        self.repo, self.max_rows, self.max_elements = repo, max_rows, max_elements
        self.max_output_elements, self.max_send_bytes = max_output_elements, max_send_bytes

    def Predict(self, request, context):
        try:
            servable = _resolve(self.repo, request.model_spec)
            signature = servable.signature(request.model_spec.signature_name or None)
            values = {k: checked_ndarray(k, v, self.max_elements) for k, v in request.inputs.items()}
            arrays = signature.check(request.model_spec.signature_name or "serving_default", values,
                                     max_rows=self.max_rows, from_json=False)
            self._refuse_large_reply(signature, arrays)
            warnings = signature.warnings(arrays)
            outputs = signature(arrays)
        except NotFound as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except BadRequest as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except ReplyTooLarge as e:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
        if warnings:
            context.set_trailing_metadata(tuple(("zoo-warning", w) for w in warnings))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def _refuse_large_reply(self, signature, arrays: dict) -> None:
        elements = signature.refuse_oversized(arrays, self.max_output_elements)
        itemsize = max(spec.dtype.size for spec in signature.outputs.values())
        reply_bytes = elements * itemsize + 1024
        if reply_bytes > self.max_send_bytes:
            raise ReplyTooLarge(
                f"the reply would be about {reply_bytes:,} bytes ({elements:,} output elements); this server "
                f"sends at most {self.max_send_bytes:,} bytes per gRPC reply, the most a default gRPC client "
                "receives. Send fewer rows, or raise both the client's max_receive_message_length and the "
                "server's --grpc-max-send-bytes")

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
                      max_rows: int = 65536, max_message_bytes: int = 16 << 20, max_output_elements: int = 8 << 20,
                      max_send_bytes: int = 4 << 20):
    """Start the gRPC server in background threads; returns (server, bound port)."""
    options = [("grpc.max_receive_message_length", max_message_bytes),
               ("grpc.max_send_message_length", max_send_bytes)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
    service = PredictionService(repo, max_rows=max_rows, max_elements=max_message_bytes // 2,
                                max_output_elements=max_output_elements, max_send_bytes=max_send_bytes)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound
