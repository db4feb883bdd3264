"""A local server that speaks TensorFlow Serving's REST API over the zoo's exports.

    zoo serve DIR [--port 8501] [--batching] [--max-batch-size 64] [--batch-timeout-micros 2000]

Routes (as TF Serving's REST API):
    GET  /v1/models/NAME[/versions/N | /labels/L]             model status
    GET  /v1/models/NAME[/versions/N | /labels/L]/metadata    signature metadata
    POST /v1/models/NAME[/versions/N | /labels/L]:predict     row ("instances") or columnar ("inputs")

Bad requests get HTTP 400 with {"error": "..."} naming the field, unknown
models or versions 404; no stack trace ever reaches a client. With batching
on, concurrent requests to the same signature are run as one batch.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import threading

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from tensorflow.core.framework import types_pb2

from serving.repository import BadRequest, ModelRepository, NotFound

log = logging.getLogger("zoo.serving")

INLINE_ROWS = 256

MODEL_PATH = re.compile(
    r"^(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?(?P<suffix>/metadata|:\w+)?$"
)


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """As TF Serving's --batching_parameters_file: max_batch_size, batch_timeout_micros."""

    max_batch_size: int = 64
    batch_timeout_micros: int = 2000


class Batcher:
    """Collects concurrent requests for one signature and runs them as one batch."""

    def __init__(self, signature, parameters: BatchingParameters):
        self.signature, self.parameters = signature, parameters
        self.pending: list = []
        self.flush_task = None

    async def run(self, arrays: dict) -> dict:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((arrays, future))
        if sum(len(next(iter(a.values()))) for a, _ in self.pending) >= self.parameters.max_batch_size:
            await self._flush()
        elif self.flush_task is None:
            self.flush_task = asyncio.create_task(self._flush_after_timeout())
        return await future

    async def _flush_after_timeout(self):
        await asyncio.sleep(self.parameters.batch_timeout_micros / 1e6)
        self.flush_task = None
        await self._flush()

    async def _flush(self):
        batch, self.pending = self.pending, []
        if self.flush_task is not None:
            self.flush_task.cancel()
            self.flush_task = None
        if not batch:
            return
        sizes = [len(next(iter(a.values()))) for a, _ in batch]
        merged = {k: np.concatenate([a[k] for a, _ in batch]) for k in batch[0][0]}
        try:
            outputs = await run_in_threadpool(self.signature, merged)
        except Exception as e:  # one failed batch fails its own requests only
            for _, future in batch:
                future.set_exception(e)
            return
        start = 0
        for size, (_, future) in zip(sizes, batch):
            future.set_result({k: v[start:start + size] for k, v in outputs.items()})
            start += size


def parse_predict_body(body: dict, signature) -> tuple:
    """(named input arrays, 'row' or 'columnar') from a TF Serving predict request body."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object with 'instances' or 'inputs'")
    if ("instances" in body) == ("inputs" in body):
        raise BadRequest("the request must have exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    names = list(signature.inputs)
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise BadRequest("'instances' must be a non-empty list")
        if all(isinstance(r, dict) for r in rows):
            keys = {frozenset(r) for r in rows}
            if len(keys) > 1:
                raise BadRequest("every element of 'instances' must name the same inputs")
            return {k: [r[k] for r in rows] for k in rows[0]}, "row"
        if len(names) != 1:
            raise BadRequest(f"this signature takes inputs {names}: each instance must be an object with those keys")
        return {names[0]: rows}, "row"
    columns = body["inputs"]
    if isinstance(columns, dict):
        return columns, "columnar"
    if len(names) != 1:
        raise BadRequest(f"this signature takes inputs {names}: 'inputs' must be an object with those keys")
    return {names[0]: columns}, "columnar"


def format_outputs(outputs: dict, layout: str) -> dict:
    if layout == "row":
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values())).tolist()}
        n = len(next(iter(outputs.values())))
        return {"predictions": [{k: v[i].tolist() for k, v in outputs.items()} for i in range(n)]}
    if len(outputs) == 1:
        return {"outputs": next(iter(outputs.values())).tolist()}
    return {"outputs": {k: v.tolist() for k, v in outputs.items()}}


def _tensor_info(spec) -> dict:
    dims = [{"size": str(-1 if d is None else d), "name": ""} for d in spec.shape.as_list()]
    return {"dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum), "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": spec.name or ""}


def signature_metadata(servable) -> dict:
    return {
        name: {
            "inputs": {k: _tensor_info(s) for k, s in sig.inputs.items()},
            "outputs": {k: _tensor_info(s) for k, s in sig.outputs.items()},
            "method_name": "tensorflow/serving/predict",
        }
        for name, sig in servable.signatures.items()
    }


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(base_dir, batching: BatchingParameters | None = None, poll_seconds: float = 1.0,
               max_request_bytes: int = 16 << 20, repository: ModelRepository | None = None) -> FastAPI:
    """The FastAPI application serving every model under ``base_dir``.

    ``poll_seconds`` > 0 starts a thread that picks up new version folders
    (TF Serving's file-system polling); 0 disables it.
    """
    repo = repository or ModelRepository(base_dir)
    batchers: dict = {}
    stop = threading.Event()

    async def poll():
        while not stop.is_set():
            await asyncio.sleep(poll_seconds)
            await run_in_threadpool(repo.refresh)

    async def lifespan(app):
        task = asyncio.create_task(poll()) if poll_seconds > 0 else None
        yield
        stop.set()
        if task:
            task.cancel()

    app = FastAPI(title="zoo serving (TF Serving REST API)", lifespan=lifespan)
    app.state.repository = repo

    def locate(path: str):
        match = MODEL_PATH.match(path)
        if not match:
            raise NotFound(f"Malformed request: /v1/models/{path}")
        version = int(match["version"]) if match["version"] else None
        return match["name"], version, match["label"], match["suffix"]

    @app.exception_handler(Exception)
    async def unexpected(request, exc):  # the last line of defence: log, never leak a trace
        log.exception("unexpected error on %s", request.url.path)
        return error(500, f"internal error: {type(exc).__name__}")

    @app.get("/v1/models/{path:path}")
    async def get_model(path: str):
        try:
            name, version, label, suffix = locate(path)
            if suffix == "/metadata":
                servable = repo.resolve(name, version, label)
                return {
                    "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
                    "metadata": {"signature_def": {"signature_def": signature_metadata(servable)}},
                }
            if suffix:
                raise NotFound(f"Malformed request: GET /v1/models/{path}")
            return {"model_version_status": repo.status(name, version, label)}
        except NotFound as e:
            return error(404, str(e))

    @app.post("/v1/models/{path:path}")
    async def post_model(path: str, request: Request):
        try:
            name, version, label, suffix = locate(path)
            if suffix != ":predict":
                raise BadRequest(f"only :predict is supported, received {suffix or 'no method'} in /v1/models/{path}")
            declared = request.headers.get("content-length")
            if declared and int(declared) > max_request_bytes:
                raise BadRequest(f"request body of {declared} bytes exceeds the limit of {max_request_bytes} bytes")
            raw = await request.body()
            if len(raw) > max_request_bytes:
                raise BadRequest(f"request body of {len(raw)} bytes exceeds the limit of {max_request_bytes} bytes")
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise BadRequest(f"JSON parse error: {e}") from None
            servable = repo.resolve(name, version, label)
            signature_name = body.get("signature_name") if isinstance(body, dict) else None
            signature = servable.signature(signature_name)
            values, layout = parse_predict_body(body, signature)
            arrays = signature.check(signature_name or "serving_default", values)
            if batching is None:
                rows = len(next(iter(arrays.values())))
                # a small request costs less than a hop to the thread pool: run it on the event loop
                outputs = signature(arrays) if rows <= INLINE_ROWS else await run_in_threadpool(signature, arrays)
            else:
                key = (name, servable.version, signature_name or "serving_default")
                batcher = batchers.get(key)
                if batcher is None or batcher.signature is not signature:
                    batcher = batchers[key] = Batcher(signature, batching)
                outputs = await batcher.run(arrays)
            return format_outputs(outputs, layout)
        except NotFound as e:
            return error(404, str(e))
        except BadRequest as e:
            return error(400, str(e))

    return app


def serve(base_dir, host: str = "127.0.0.1", port: int = 8501, batching: BatchingParameters | None = None,
          poll_seconds: float = 1.0, grpc_port: int | None = None) -> None:
    """Run REST (and gRPC) until SIGINT/SIGTERM; in-flight requests finish before it exits."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    repo = ModelRepository(base_dir)
    grpc_server = None
    if grpc_port is not None:
        from serving.grpc_server import start_grpc_server

        grpc_server, bound = start_grpc_server(repo, host, grpc_port)
        log.info("gRPC PredictionService on %s:%d", host, bound)
    app = create_app(base_dir, batching=batching, poll_seconds=poll_seconds, repository=repo)
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=30)
    finally:
        if grpc_server is not None:
            grpc_server.stop(grace=30).wait()


def read_batching_parameters(path) -> BatchingParameters:
    """Read max_batch_size and batch_timeout_micros from a TF Serving batching parameters file."""
    text = open(path).read()
    values = {k: int(v) for k, v in re.findall(r"(max_batch_size|batch_timeout_micros)\s*\{\s*value:\s*(\d+)\s*\}", text)}
    return BatchingParameters(**values)
