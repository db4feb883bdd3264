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
import contextlib
import dataclasses
import logging
import re
from pathlib import Path

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from tensorflow.core.framework import types_pb2

from serving.repository import CALL_ROWS, BadRequest, ModelRepository, NotFound, configure_model_threads

log = logging.getLogger("zoo.serving")

INLINE_BYTES = 64 << 10  # smaller request bodies are parsed on the event loop; larger ones in a worker thread
INLINE_SECONDS = 1e-3  # a request expected to take less model time than this is answered on the event loop
INLINE_ELEMENTS = 1 << 14  # ... if its outputs are this small; every other request runs in a worker thread
CHUNK_SECONDS = 0.02  # a costly request runs in model calls of about this long, so others interleave
ENCODE_CHUNK_ELEMENTS = 1 << 16  # JSON is written this many elements at a time, releasing the GIL between
MAX_ROWS = 65536
MAX_OUTPUT_ELEMENTS = 8 << 20  # 32 MiB of float32 per request
NON_FINITE = re.compile(rb"(?<![\w\"])-?(NaN|Infinity)(?![\w\"])")

MODEL_PATH = re.compile(
    r"^(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?(?P<suffix>/metadata|:\w+)?$"
)


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """As TF Serving's --batching_parameters_file: max_batch_size, batch_timeout_micros."""

    max_batch_size: int = 64
    batch_timeout_micros: int = 2000


class Batcher:
    """Collects concurrent requests for one signature and runs them as one batch.

    Only requests whose inputs have the same shapes past the batch axis (and dtypes) share
    a batch: an 8 x 8 and a 16 x 16 lattice go to separate queues. Every future is settled
    on every path. A failed batch is retried member by member, so a malformed request
    fails alone and never takes the valid requests that shared its batch with it.
    """

    def __init__(self, signature, parameters: BatchingParameters):
        self.signature, self.parameters = signature, parameters
        self.queues: dict = {}  # shape key -> pending [(arrays, future)]
        self.timers: dict = {}  # shape key -> flush task

    @staticmethod
    def _key(arrays: dict) -> tuple:
        return tuple((k, a.shape[1:], a.dtype.str) for k, a in sorted(arrays.items()))

    async def run(self, arrays: dict, rows_per_call: int) -> dict:
        key = self._key(arrays)
        future = asyncio.get_running_loop().create_future()
        queue = self.queues.setdefault(key, [])
        queue.append((arrays, future, rows_per_call))
        if sum(_rows(a) for a, _, _ in queue) >= self.parameters.max_batch_size:
            await self._flush(key)
        elif key not in self.timers:
            self.timers[key] = asyncio.create_task(self._flush_after_timeout(key))
        return await future

    async def _flush_after_timeout(self, key):
        await asyncio.sleep(self.parameters.batch_timeout_micros / 1e6)
        self.timers.pop(key, None)
        await self._flush(key)

    async def _flush(self, key):
        batch = self.queues.pop(key, [])
        timer = self.timers.pop(key, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        if not batch:
            return
        try:
            await self._answer(batch)
        except BaseException as e:  # whatever happened, no request is left waiting
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(e if isinstance(e, Exception) else RuntimeError("the server is stopping"))
            if not isinstance(e, Exception):
                raise

    async def _answer(self, batch):
        if len(batch) == 1:
            await self._answer_one(*batch[0])
            return
        merged = {k: np.concatenate([a[k] for a, _, _ in batch]) for k in batch[0][0]}
        try:
            outputs = await run_in_threadpool(self.signature, merged, min(r for _, _, r in batch))
        except BadRequest:  # one member's values failed a check in the graph: answer each alone
            for member in batch:
                await self._answer_one(*member)
            return
        start = 0
        for arrays, future, _ in batch:
            size = _rows(arrays)
            if not future.done():
                future.set_result({k: v[start:start + size] for k, v in outputs.items()})
            start += size

    async def _answer_one(self, arrays, future, rows_per_call):
        try:
            result = await run_in_threadpool(self.signature, arrays, rows_per_call)
        except Exception as e:  # noqa: BLE001 -- the future carries any error to its own request
            if not future.done():
                future.set_exception(e)
            return
        if not future.done():
            future.set_result(result)


def _rows(arrays: dict) -> int:
    return len(next(iter(arrays.values())))


def parse_predict_body(body: dict, signature) -> tuple:
    """(named input arrays, 'row' or 'columnar') from a TF Serving predict request body."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object with 'instances' or 'inputs'")
    if ("instances" in body) == ("inputs" in body):
        raise BadRequest("the request must have exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    names = list(signature.inputs)
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list):
            raise BadRequest(f"'instances' must be a list of rows; received a {type(rows).__name__}")
        if not rows:
            raise BadRequest(f"The batch is empty: received 'instances': []; expected at least one row of {names}.")
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
    """TF Serving's response body; numpy arrays stay arrays (orjson writes them directly)."""
    if layout == "row":
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values()))}
        n = len(next(iter(outputs.values())))
        return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(n)]}
    if len(outputs) == 1:
        return {"outputs": next(iter(outputs.values()))}
    return {"outputs": dict(outputs)}


def encode_json(body) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


_NON_FINITE_TOKENS = {"nan": b"NaN", "inf": b"Infinity", "-inf": b"-Infinity"}


def _encode_finite_or_tokens(value, non_finite: np.ndarray) -> bytes:
    """orjson's encoding of ``value``, its non-finite numbers written as TF Serving writes them (NaN,
    Infinity, -Infinity: JSON as JavaScript reads it) instead of orjson's null. ``non_finite`` holds those
    numbers in the order they appear in the encoding."""
    encoded = encode_json(value)
    if non_finite.size == 0:
        return encoded
    pieces = encoded.split(b"null")
    tokens = [_NON_FINITE_TOKENS[str(float(v))] for v in non_finite]
    return b"".join(p + t for p, t in zip(pieces, tokens)) + pieces[-1]


def _non_finite(*arrays) -> np.ndarray:
    found = [a[~np.isfinite(a)] for a in arrays if a.dtype.kind == "f"]
    return np.concatenate([f.ravel() for f in found]) if found else np.zeros(0)


def _json_array(array: np.ndarray) -> bytes:
    """A JSON array of ``array``, written ``ENCODE_CHUNK_ELEMENTS`` elements at a time."""
    if array.ndim == 0 or array.size <= ENCODE_CHUNK_ELEMENTS:
        return _encode_finite_or_tokens(array, _non_finite(array) if array.dtype.kind == "f" else np.zeros(0))
    step = max(1, ENCODE_CHUNK_ELEMENTS // max(1, array[0].size))
    parts = [_encode_finite_or_tokens(array[i:i + step], _non_finite(array[i:i + step]))[1:-1]
             for i in range(0, len(array), step)]
    return b"[" + b",".join(parts) + b"]"


def _json_rows(outputs: dict) -> bytes:
    """Row format of several outputs: one object per row, written a chunk of rows at a time."""
    n = len(next(iter(outputs.values())))
    per_row = max(1, sum(v[0].size for v in outputs.values()))
    step = max(1, ENCODE_CHUNK_ELEMENTS // per_row)
    parts = []
    for i in range(0, n, step):
        rows = [{k: v[j] for k, v in outputs.items()} for j in range(i, min(n, i + step))]
        non_finite = _non_finite(*(v[j] for j in range(i, min(n, i + step)) for v in outputs.values()))
        parts.append(_encode_finite_or_tokens(rows, non_finite)[1:-1])
    return b"[" + b",".join(parts) + b"]"


def encode_response(outputs: dict, layout: str, warnings: list = ()) -> bytes:
    """TF Serving's response body for ``outputs``, with the server's ``warnings`` (inputs outside the
    trained range) when there are any. Large outputs are written in chunks, so a worker thread writing
    them lets the event loop run between chunks."""
    if layout == "row" and len(outputs) > 1:
        key, payload = b"predictions", _json_rows(outputs)
    elif len(outputs) == 1:
        key, payload = (b"predictions" if layout == "row" else b"outputs"), _json_array(next(iter(outputs.values())))
    else:
        key = b"outputs"
        payload = b"{" + b",".join(encode_json(k) + b":" + _json_array(v) for k, v in outputs.items()) + b"}"
    extra = b',"warnings":' + encode_json(list(warnings)) if warnings else b""
    return b'{"' + key + b'":' + payload + extra + b"}"


def decode_json(raw: bytes):
    """Strict JSON (no NaN, no numbers beyond float64, at most 1024 levels deep), or a BadRequest."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        hint = ("; NaN and Infinity are not JSON numbers, and every input must be finite"
                if NON_FINITE.search(raw[:1 << 20]) else "")
        raise BadRequest(f"JSON parse error: {e}{hint}") from None


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


def error(status: int, message: str) -> Response:
    return Response(encode_json({"error": message}), status_code=status, media_type="application/json")


async def read_body(request, limit: int) -> bytes:
    """The request body, refused as soon as it passes ``limit`` bytes (a chunked body has no Content-Length)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit() or len(declared) > 18:
            raise BadRequest(f"Content-Length {declared[:40]!r} is not a byte count")
        if int(declared) > limit:
            raise BadRequest(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclasses.dataclass
class Predict:
    """One predict request, checked and planned: where it runs and in how large model calls."""

    signature: object
    signature_name: str
    version: int
    arrays: dict
    layout: str
    inline: bool
    rows_per_call: int


class RestPredictor:
    """Answers REST predict requests from a model repository.

    Where a request runs follows its cost, never its body size: the export's declared seconds per row (and
    per unit of any free axis) and the output size it will have are known before the model runs. A request
    expected to take under ``INLINE_SECONDS`` with small outputs is answered on the event loop (a hop to a
    thread would cost more); every other one runs its model calls and writes its JSON in a worker thread,
    in chunks, so the event loop stays free for every other client. A request whose outputs would pass
    ``max_output_elements`` is refused before the model runs. With batching, requests smaller than a
    batch share model calls; a larger one runs alone, so small requests never wait behind it.
    """

    def __init__(self, repo: ModelRepository, batching: BatchingParameters | None, max_rows: int,
                 max_output_elements: int):
        self.repo, self.batching = repo, batching
        self.max_rows, self.max_output_elements = max_rows, max_output_elements
        self.batchers: dict = {}

    def prepare(self, name, version, label, raw: bytes) -> Predict:
        """Parse, check and plan one predict request (cheap: bounded by the body's size)."""
        body = decode_json(raw)
        servable = self.repo.resolve(name, version, label)
        signature_name = body.get("signature_name") if isinstance(body, dict) else None
        if signature_name is not None and not isinstance(signature_name, str):
            raise BadRequest(f"'signature_name' must be a string; received a {type(signature_name).__name__}")
        signature_name = signature_name or "serving_default"
        signature = servable.signature(signature_name)
        values, layout = parse_predict_body(body, signature)
        arrays = signature.check(signature_name, values, max_rows=self.max_rows)
        elements = signature.refuse_oversized(arrays, self.max_output_elements)
        seconds = signature.estimated_seconds(arrays)
        inline = seconds is not None and seconds <= INLINE_SECONDS and elements <= INLINE_ELEMENTS
        rows_per_call = CALL_ROWS if not seconds else max(1, int(CHUNK_SECONDS * _rows(arrays) / seconds))
        return Predict(signature, signature_name, servable.version, arrays, layout, inline, rows_per_call)

    @staticmethod
    def answer(request: Predict) -> tuple:
        """(response body, warnings) of a prepared request: the model call and the JSON."""
        warnings = request.signature.warnings(request.arrays)
        outputs = request.signature(request.arrays, request.rows_per_call)
        return encode_response(outputs, request.layout, warnings), warnings

    async def __call__(self, name, version, label, raw: bytes) -> Response:
        # parsing comes before the cost is known, so only there does the body's size choose the thread
        request = self.prepare(name, version, label, raw) if len(raw) <= INLINE_BYTES else await run_in_threadpool(
            self.prepare, name, version, label, raw)
        if self.batching is None or _rows(request.arrays) >= self.batching.max_batch_size:
            # a request as large as a whole batch runs alone: small ones never wait behind it
            content, warnings = await _as_planned(request, self.answer, request)
        else:
            outputs = await self._batcher(name, request).run(request.arrays, request.rows_per_call)
            warnings = request.signature.warnings(request.arrays)
            content = await _as_planned(request, encode_response, outputs, request.layout, warnings)
        headers = {"Warning": "; ".join(f'299 zoo "{w}"' for w in warnings)} if warnings else None
        return Response(content, media_type="application/json", headers=headers)

    def _batcher(self, name, request: Predict) -> Batcher:
        key = (name, request.version, request.signature_name)
        batcher = self.batchers.get(key)
        if batcher is None or batcher.signature is not request.signature:
            batcher = self.batchers[key] = Batcher(request.signature, self.batching)
        return batcher


async def _as_planned(request: Predict, function, *args):
    """``function(*args)`` on the event loop if ``RestPredictor.prepare`` planned ``request`` inline, else in a
    worker thread: the one place that acts on the plan."""
    return function(*args) if request.inline else await run_in_threadpool(function, *args)


def create_app(base_dir, batching: BatchingParameters | None = None, poll_seconds: float = 1.0,
               max_request_bytes: int = 16 << 20, repository: ModelRepository | None = None,
               max_rows: int = MAX_ROWS, max_output_elements: int = MAX_OUTPUT_ELEMENTS) -> FastAPI:
    """The FastAPI application serving every model under ``base_dir``.

    ``max_request_bytes`` bounds a request body, ``max_rows`` its batch and ``max_output_elements`` its
    outputs, so that one request's memory and time are bounded.

    ``poll_seconds`` > 0 starts a task that picks up new version folders
    (TF Serving's file-system polling); 0 disables it.

    The handlers below are module-level functions that find the repository, the predictor and the
    limits in ``app.state``; this function only wires them.
    """
    app = FastAPI(title="zoo serving (TF Serving REST API)", lifespan=lifespan)
    app.state.repository = repository or ModelRepository(base_dir)
    app.state.predictor = RestPredictor(app.state.repository, batching, max_rows, max_output_elements)
    app.state.poll_seconds = poll_seconds
    app.state.max_request_bytes = max_request_bytes
    app.add_exception_handler(Exception, unexpected)
    app.get("/v1/models/{path:path}")(get_model)
    app.router.add_route("/v1/models/{path:path}", post_model, methods=["POST"])
    return app


async def poll_repository(app) -> None:
    """Refresh the app's repository every ``poll_seconds``, forever (the lifespan cancels it)."""
    while True:
        await asyncio.sleep(app.state.poll_seconds)
        await run_in_threadpool(app.state.repository.refresh)


@contextlib.asynccontextmanager
async def lifespan(app):
    """Polls the repository while the app runs, when ``poll_seconds`` > 0."""
    task = asyncio.create_task(poll_repository(app)) if app.state.poll_seconds > 0 else None
    yield
    if task:
        task.cancel()


async def unexpected(request, exc) -> Response:
    """The last line of defence: the trace goes to the log, the client gets only the exception's type."""
    log.exception("unexpected error on %s", request.url.path)
    return error(500, f"internal error: {type(exc).__name__}")


async def get_model(path: str, request: Request):
    """Model status, or with ``/metadata`` the signature metadata (a FastAPI route, listed in its OpenAPI)."""
    repo = request.app.state.repository
    try:
        name, version, label, suffix = locate(path)
        if suffix == "/metadata":
            return model_metadata(name, repo.resolve(name, version, label))
        if suffix:
            raise NotFound(f"Malformed request: GET /v1/models/{path}")
        return {"model_version_status": repo.status(name, version, label)}
    except NotFound as e:
        return error(404, str(e))


def model_metadata(name: str, servable) -> dict:
    """TF Serving's GetModelMetadata response (REST) for one servable."""
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
        "metadata": {"signature_def": {"signature_def": signature_metadata(servable)}},
    }


async def post_model(request: Request) -> Response:
    """A plain Starlette route: the predict path skips FastAPI's parameter machinery."""
    path = request.path_params["path"]
    state = request.app.state
    try:
        name, version, label, suffix = locate(path)
        if suffix != ":predict":
            raise BadRequest(f"only :predict is supported, received {suffix or 'no method'} in /v1/models/{path}")
        return await state.predictor(name, version, label, await read_body(request, state.max_request_bytes))
    except NotFound as e:
        return error(404, str(e))
    except BadRequest as e:
        return error(400, str(e))


def locate(path: str) -> tuple:
    """(name, version, label, suffix) of a ``/v1/models/...`` path."""
    match = MODEL_PATH.match(path)
    if not match:
        raise NotFound(f"Malformed request: /v1/models/{path}")
    if match["version"] and len(match["version"]) > 18:
        raise NotFound(f"Servable not found for request: version {match['version'][:20]}... is not a version number")
    version = int(match["version"]) if match["version"] else None
    return match["name"], version, match["label"], match["suffix"]


def serve(base_dir, host: str = "127.0.0.1", port: int = 8501, batching: BatchingParameters | None = None,
          poll_seconds: float = 1.0, grpc_port: int | None = None, max_rows: int = MAX_ROWS,
          max_request_bytes: int = 16 << 20, max_output_elements: int = MAX_OUTPUT_ELEMENTS,
          grpc_max_send_bytes: int = 4 << 20, access_log: bool = False) -> None:
    """Run REST (and gRPC) until SIGINT/SIGTERM; in-flight requests finish before it exits.

    ``grpc_max_send_bytes`` is the largest gRPC reply (gRPC clients receive 4 MiB unless they raise
    their limit); a request whose reply would be larger is refused before it runs. ``access_log`` writes a
    line per request, as TF Serving does not by default (it costs about a tenth of a millisecond each)."""
    import uvicorn

    empty = check_export_folder(base_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if empty:
        log.warning("%s holds no exported model yet (expected NAME/VERSION/saved_model.pb, as `zoo export --out "
                    "%s` writes); serving none until a version appears (polled every %g s).", base_dir, base_dir,
                    poll_seconds)
    configure_model_threads()
    repo = ModelRepository(base_dir)
    grpc_server = None
    if grpc_port is not None:
        from serving.grpc_server import start_grpc_server

        grpc_server, bound = start_grpc_server(repo, host, grpc_port, max_rows=max_rows,
                                               max_output_elements=max_output_elements,
                                               max_send_bytes=grpc_max_send_bytes)
        log.info("gRPC PredictionService on %s:%d", host, bound)
    app = create_app(base_dir, batching=batching, poll_seconds=poll_seconds, repository=repo, max_rows=max_rows,
                     max_request_bytes=max_request_bytes, max_output_elements=max_output_elements)
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=access_log, timeout_graceful_shutdown=30)
    finally:
        if grpc_server is not None:
            grpc_server.stop(grace=30).wait()


def check_export_folder(base_dir) -> bool:
    """Refuse what is not a model base folder, saying what was expected; True when it holds no model yet
    (the server may start on it: it picks up versions as they appear, as TF Serving does)."""
    base = Path(base_dir)
    expected = "the folder that `zoo export NAME --out DIR` wrote (DIR/NAME/VERSION/saved_model.pb)"
    if not base.is_dir():
        raise FileNotFoundError(f"{base} is not a folder; give {expected}.")
    if (base / "metadata.json").is_file() and (base / "model.weights.h5").is_file():
        raise ValueError(f"{base} is a preset folder (weights and metadata), not an export; run "
                         f"`zoo export {base} --out DIR` and serve DIR.")
    if (base / "saved_model.pb").is_file():
        raise ValueError(f"{base} is one version of one model; give {expected}, here "
                         f"{base.parent.parent if base.name.isdigit() else 'the folder two levels up'}.")
    return not any(version.is_dir() and version.name.isdigit() and (version / "saved_model.pb").is_file()
                   for model in base.iterdir() if model.is_dir() for version in model.iterdir())


def read_batching_parameters(path) -> BatchingParameters:
    """Read max_batch_size and batch_timeout_micros from a TF Serving batching parameters file."""
    text = Path(path).read_text()
    values = {k: int(v) for k, v in re.findall(r"(max_batch_size|batch_timeout_micros)\s*\{\s*value:\s*(\d+)\s*\}", text)}
    return BatchingParameters(**values)
