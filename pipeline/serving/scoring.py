"""The scoring server's HTTP side: MLflow's scoring protocol on FastAPI (docs/serving.md).

    GET  /ping, /health   200 once the model is loaded
    GET  /version         the model answering now: name, version, run id, data hash, alias
    POST /invocations     {"dataframe_records": [...]}, {"dataframe_split": {...}} or {"inputs": ...}
                          → {"predictions": [...], "model": {"name", "version", "run_id"}}

Every answer names the model in the headers X-Model-Name, X-Model-Version and X-Model-Run-Id. A
request the server cannot answer gets a 4xx with one line of JSON, {"error_code": ..., "message":
...}, never a traceback: not JSON (400), not MLflow's protocol (400), a record the model refuses
(an image that does not decode, pixels of the wrong shape: 400), more than `max_records` records
or a body over `max_bytes` (413), another content type (415), a body that does not arrive within
`body_seconds` (408). MLflow's own parser and the model's pyfunc do the work, so answers are the
ones `mlflow.pyfunc.load_model(...).predict(records)` gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import sys

from fastapi import Request  # module level: FastAPI resolves the handlers' annotations here

from pipeline.errors import first_line
from pipeline.serving.follow import Follower, Served

FORMATS = ("dataframe_records", "dataframe_split", "inputs", "instances")  # MLflow's, in its words
ERROR_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 408: "REQUEST_TIMEOUT"}
ERROR_CODES |= {413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 500: "INTERNAL_ERROR"}


@dataclasses.dataclass(frozen=True)
class Limits:
    max_records: int = 1000  # records per request (a 64-image request is 64)
    max_bytes: int = 16 * 2**20  # request body
    body_seconds: float = 30.0  # a body must arrive within this (a slow client holds no slot longer)
    concurrency: int = 4  # requests scored at once; the others wait their turn


class Refused(Exception):
    """A request the server answers with a 4xx: `status` and one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def error(status: int, message: str, served: Served | None):
    from fastapi.responses import JSONResponse

    body = {"error_code": ERROR_CODES.get(status, "BAD_REQUEST"), "message": message.replace("\n", " ")}
    return JSONResponse(body, status_code=status, headers=served.headers() if served else None)


def check_type(content_type: str | None) -> None:
    mime, _, rest = (content_type or "").partition(";")
    charset = rest.strip().lower().removeprefix("charset=") if rest.strip() else "utf-8"
    if mime.strip().lower() != "application/json" or charset.strip('"') != "utf-8":
        raise Refused(415, f"send JSON (Content-Type: application/json), not '{content_type or 'nothing'}'")


async def read_body(request, limit: int) -> bytes:
    """The body, refused as soon as it is over `limit` bytes (before it is read when it says so)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise Refused(413, f"the body is {int(length)} bytes; at most {limit} bytes per request")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"the body is over {limit} bytes; at most {limit} bytes per request")
        chunks.append(chunk)
    return b"".join(chunks)


def parse(body: bytes) -> dict:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refused(400, f"the body is not JSON ({first_line(exc)})") from None
    except RecursionError:
        raise Refused(400, "the body is JSON nested too deeply") from None
    given = sorted(k for k in payload if k in FORMATS) if isinstance(payload, dict) else []
    if len(given) != 1:
        what = f"keys {sorted(payload)[:10]}" if isinstance(payload, dict) else type(payload).__name__
        raise Refused(
            400,
            "give exactly one of dataframe_records, dataframe_split or inputs (MLflow's scoring "
            f"protocol); got {what}",
        )
    return {given[0]: payload[given[0]]}


def record_count(payload: dict) -> int:
    """How many records a request holds, read before any of them is parsed."""
    ((key, value),) = payload.items()
    if key == "dataframe_split":
        rows = value.get("data") if isinstance(value, dict) else None
        if not isinstance(rows, list):
            raise Refused(400, 'dataframe_split needs {"columns": [...], "data": [[...], ...]}')
        return len(rows)
    if key == "dataframe_records" and not isinstance(value, list):
        raise Refused(400, "dataframe_records needs a list of records")
    if isinstance(value, dict):  # columns: {"pixels": [[...], [...]]}
        lengths = [len(v) for v in value.values() if isinstance(v, list)]
        return max(lengths, default=1)
    return len(value) if isinstance(value, list) else 1


def records(payload: dict, schema):
    """MLflow's own reading of the protocol (a DataFrame, or the `inputs` as given)."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    try:
        return scoring_server.infer_and_parse_data(payload, schema)
    except MlflowException as exc:
        raise Refused(400, first_line(exc)) from None
    except Exception as exc:  # noqa: BLE001 - pandas' own complaints about a malformed frame
        key = next(iter(payload))
        raise Refused(400, f"{key} cannot be read as records ({first_line(exc, typed=True)})") from None


def predict(served: Served, data):
    from mlflow.exceptions import MlflowException

    try:
        return served.model.predict(data)
    except MlflowException as exc:
        status = exc.get_http_status_code()
        raise Refused(status if 400 <= status < 500 else 400, first_line(exc)) from None
    except Exception as exc:  # noqa: BLE001 - as MLflow's server does: the input did not suit the model
        raise Refused(400, f"the model could not score the records ({first_line(exc, typed=True)})") from None


def score(served: Served, body: bytes, limits: Limits) -> bytes:
    """Parse, check, predict and answer one request (in a worker thread)."""
    from mlflow.pyfunc import scoring_server

    payload = parse(body)
    count = record_count(payload)
    if count > limits.max_records:
        raise Refused(413, f"{count} records; at most {limits.max_records} per request (split it)")
    data = records(payload, served.schema)
    answers = predict(served, data)
    out = io.StringIO()
    scoring_server.predictions_to_json(answers, out, metadata={"model": served.identity()})
    if served.observer is not None:
        served.observer.add(data, answers)  # cheap: statistics into the window, no I/O
    return out.getvalue().encode()


def add_status_routes(app, follower: Follower) -> None:
    """GET /ping, /health and /version: which model answers, without touching it."""
    from fastapi.responses import JSONResponse

    @app.get("/ping")
    @app.get("/health")
    async def ping():
        return JSONResponse(
            {"status": "ok", "model": follower.current.identity()}, headers=follower.current.headers()
        )

    @app.get("/version")
    async def version():
        import mlflow

        served = follower.current
        body = {**served.identity(), "data_hash": served.data_hash, "alias": follower.settings.alias}
        body |= {"serving_since": served.loaded_at, "mlflow": mlflow.__version__}
        return JSONResponse(body, headers=served.headers())


def create_app(follower: Follower, limits: Limits):
    from fastapi import FastAPI
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException

    @contextlib.asynccontextmanager
    async def lifespan(app):
        follower.start()
        yield
        await run_in_threadpool(follower.stop)  # the last drift windows are written, runs ended

    app = FastAPI(
        title="pipeline scoring server", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    slots = asyncio.Semaphore(limits.concurrency)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):  # unknown paths, wrong methods: one line as well
        return error(exc.status_code, str(exc.detail), follower.current)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        return error(400, "the request is malformed", follower.current)

    add_status_routes(app, follower)

    @app.post("/invocations")
    async def invocations(request: Request):
        served = follower.current  # this request's version, whatever the alias does meanwhile
        try:
            check_type(request.headers.get("content-type"))
            body = await asyncio.wait_for(read_body(request, limits.max_bytes), limits.body_seconds)
            async with slots:
                content = await run_in_threadpool(score, served, body, limits)
        except Refused as exc:
            return error(exc.status, str(exc), served)
        except TimeoutError:
            return error(408, f"the body did not arrive within {limits.body_seconds:.0f} s", served)
        except Exception as exc:  # noqa: BLE001 - a fault of ours: one line here, one in the log
            print(f"serve: internal error on a request ({first_line(exc, typed=True)})", file=sys.stderr)
            return error(500, f"internal error ({type(exc).__name__}); see the server's log", served)
        return Response(content, media_type="application/json", headers=served.headers())

    return app
