"""The HTTP contract every variant implements: models, routes, status codes, /health, /metrics and start-up.

`GET /items/{item_id}/slow?wait_ms=50` is the io_wait route: the request holds ONE pool connection while the
*database* waits `wait_ms` (0..10000), then reads the item like `GET /items/{item_id}` (404 when missing).
It shows what a slow query does to pools, threads and the event loop. Where the database waits, per backend
(each variant reports its own way in /health's `db_wait`):

| backend           | how the wait happens                                                                  |
|-------------------|---------------------------------------------------------------------------------------|
| PostgreSQL        | `SELECT pg_sleep(s)` on the server, then the read on the same connection              |
| MySQL / MariaDB   | `SELECT SLEEP(s)` on the server, then the read on the same connection (one session)   |
| Redis             | `XREAD BLOCK ms` on a stream nothing writes to: the server parks the connection; Redis |
|                   | rounds a block up to its next `hz` tick (100 ms at the default hz 10)                 |
| MongoDB           | a tailable awaitData cursor on a capped collection nothing writes to: the server holds |
|                   | the getMore for maxAwaitTimeMS; the drivers check out a connection per operation, so   |
|                   | the read after it takes a connection again (usually the same one)                     |
| memory            | `asyncio.sleep` in the app (there is no database)                                     |

`GET /metrics` is apps/telemetry.py's contract: pool checkouts and waits, event-loop lag, busy threads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from math import isfinite
from typing import Annotated, Any, Literal, Self, TypeVar
from urllib.parse import unquote, urlsplit

from anyio.to_thread import current_default_thread_limiter
from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema
from starlette.types import Message, Receive, Scope, Send

from apps import telemetry
from apps.catalog import VariantSpec
from apps.guards import BodySizeLimit, method_not_allowed
from apps.masking import mask_url
from apps.pooling import DriverPool
from apps.settings import AppSettings, StartupError, load_settings

LIST_LIMIT_DEFAULT = 20
WAIT_MS_DEFAULT = 50
WAIT_MS_MAX = 10_000
LIST_LIMIT_MAX = 100
ITEM_NOT_FOUND = "item not found"
# Bounds of the SQL column types, enforced here so that out-of-range input is a 422 on every backend
# instead of a driver overflow (a 500) on some.
BIGINT_MAX = 2**63 - 1
INTEGER_MAX = 2**31 - 1
NAME_LENGTH_MAX = 200
DESCRIPTION_LENGTH_MAX = 2000
# Far above the largest valid item (a 2000-character description of 4-byte characters is under 10 KiB).
BODY_BYTES_MAX = 64 * 1024
# PostgreSQL text cannot hold NUL; refused for every backend so that all of them accept the same items.
# (Lone surrogates, which JSON can spell as "\ud800", are refused too: pydantic rejects any string that
# is not valid Unicode once a constraint applies.)
NO_NUL = r"^[^\x00]*$"

ItemId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
Limit = Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)]
Offset = Annotated[int, Query(ge=0, le=BIGINT_MAX)]
WaitMs = Annotated[int, Query(ge=0, le=WAIT_MS_MAX, description="how long the database waits, in ms")]

Name = Annotated[str, Field(min_length=1, max_length=NAME_LENGTH_MAX, pattern=NO_NUL)]
Description = Annotated[str, Field(max_length=DESCRIPTION_LENGTH_MAX, pattern=NO_NUL)]
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def _whole_number(value: object) -> object:
    # JSON Schema's integers include 3.0, which strict validation would refuse.
    return int(value) if isinstance(value, float) and value.is_integer() else value


Quantity = Annotated[int, Field(ge=0, le=INTEGER_MAX), BeforeValidator(_whole_number)]


# Strict: JSON types as the schema gives them, so `"3"` or `true` is not quietly taken for a quantity of 3 or 1.
_INPUT = ConfigDict(extra="forbid", strict=True)


class ItemCreate(BaseModel):
    model_config = _INPUT

    name: Name
    description: Description | None = None
    price: Price
    quantity: Quantity = 0


_NOT_NULL = ("name", "price", "quantity")


def _update_schema(schema: dict[str, Any]) -> None:
    """ItemUpdate's schema says what its validators enforce: at least one field, and null only for description."""
    schema["minProperties"] = 1
    for field in _NOT_NULL:
        schema["properties"][field].pop("default", None)  # an omitted field is left as it is, not set to null


class ItemUpdate(BaseModel):
    """Changes to an item: only the fields given are changed."""

    model_config = _INPUT | ConfigDict(json_schema_extra=_update_schema)

    name: Name | SkipJsonSchema[None] = None
    description: Description | None = None
    price: Price | SkipJsonSchema[None] = None
    quantity: Quantity | SkipJsonSchema[None] = None

    # Validators skip defaults, so this only rejects an explicit null for a column that cannot be NULL.
    @field_validator(*_NOT_NULL)
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, but not set to null")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self

    def values_given(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class ItemResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    price: float
    quantity: int


class Problem(BaseModel):
    """The body of a 404 or 413 (a 422's `detail` is FastAPI's list of validation errors instead)."""

    detail: str


class HealthConfig(BaseModel):
    pool_size: int
    max_overflow: int
    pool_timeout_s: float
    pool_pre_ping: bool
    thread_tokens: int
    database_url: str | None
    telemetry: bool
    # The pool_size/max_overflow above, translated into this driver's own knobs (see apps/pooling.py).
    driver_pool: dict[str, int | float] | None = None


class HealthResponse(BaseModel):
    """What `GET /health` returns; the harness compares it with what it asked for."""

    status: Literal["ok"] = "ok"
    variant: str
    backend: str
    mode: str
    driver: str
    pooled: bool
    db_wait: str  # how GET /items/{item_id}/slow waits on this variant (see the module docstring)
    config: HealthConfig


T = TypeVar("T")


def or_404(found: T | None) -> T:
    if found is None:
        raise HTTPException(status_code=404, detail=ITEM_NOT_FOUND)
    return found


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
Handler = Callable[..., object]


def create_app(
    module_name: str,
    variant: VariantSpec,
    lifespan: Lifespan,
    *,
    create_item: Handler,
    read_item: Handler,
    list_items: Handler,
    update_item: Handler,
    delete_item: Handler,
    read_item_slow: Handler,
    db_wait: str,
    driver_pool: Callable[[AppSettings], DriverPool] | None = None,
) -> FastAPI:
    """Mount a variant's handlers on the contract's routes; `lifespan` opens what the handlers need;
    `db_wait` says how `read_item_slow` waits; `driver_pool` tells /health how this driver's pool knobs were
    set (apps/pooling.py)."""
    name = module_name.rpartition(".")[2]
    app = FastAPI(title=f"item service ({name})", lifespan=_with_settings(name, lifespan))
    _one_line_startup_failure(app)
    app.add_middleware(BodySizeLimit, max_bytes=BODY_BYTES_MAX)
    app.add_exception_handler(RequestValidationError, _unprocessable)
    app.add_exception_handler(405, method_not_allowed)
    app.add_exception_handler(Exception, _internal_error)
    # Starlette tries routes in order and every request pays for each miss: the load's routes come first.
    app.add_api_route("/items/{item_id}", read_item, methods=["GET"], response_model=ItemResponse, responses=_MISSING)
    app.add_api_route("/items", list_items, methods=["GET"], response_model=list[ItemResponse])
    app.add_api_route(
        "/items", create_item, methods=["POST"], status_code=201, response_model=ItemResponse, responses=_BAD_BODY
    )
    app.add_api_route(
        "/items/{item_id}", update_item, methods=["PUT"], response_model=ItemResponse, responses=_MISSING | _BAD_BODY
    )
    app.add_api_route(
        "/items/{item_id}",
        delete_item,
        methods=["DELETE"],
        status_code=204,
        response_class=Response,
        responses=_MISSING,
    )
    app.add_api_route(
        "/items/{item_id}/slow", read_item_slow, methods=["GET"], response_model=ItemResponse, responses=_MISSING
    )
    health = _health(name, variant, db_wait, driver_pool)
    app.add_api_route("/health", health, methods=["GET"], response_model=HealthResponse)
    app.add_api_route("/metrics", telemetry.metrics_route(name), methods=["GET"])
    return app


# The error answers a route can give besides FastAPI's own 422, so that the OpenAPI schema lists them.
_MISSING: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": ITEM_NOT_FOUND}}
_BAD_BODY: dict[int | str, dict[str, Any]] = {
    # FastAPI's answer to a body that is not UTF-8 (one that is not JSON is a 422).
    400: {"model": Problem, "description": "request body that is not UTF-8 text"},
    413: {"model": Problem, "description": f"request body over {BODY_BYTES_MAX} bytes"},
}


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A 500 that names the class of what failed (a driver's OperationalError, a pool's TimeoutError), so the
    load generator counts errors by kind: what a database restart does to each driver is in those kinds. The
    traceback is still logged by the server; the message is not sent (it may name hosts or users)."""
    return JSONResponse(status_code=500, content={"detail": "internal server error", "error": type(exc).__name__})


async def _unprocessable(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own 422 handler, except that a body such as `{"price": Infinity}` cannot turn it into a 500."""
    # The echoed input may hold a non-finite float, which JSONResponse refuses to encode.
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse(status_code=422, content={"detail": _json_safe(jsonable_encoder(errors))})


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not isfinite(value):
        return str(value)
    if isinstance(value, str) and not value.isascii():
        # A lone surrogate (JSON may spell one as "\ud800") cannot be encoded as UTF-8: escape it instead.
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_json_safe(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def _with_settings(name: str, lifespan: Lifespan) -> Lifespan:
    """Load settings and size the thread pool before the variant's own lifespan; report failures in one line."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        app.state.startup_error = None
        database, password = "", None
        async with AsyncExitStack() as stack:
            try:
                settings = load_settings()
                if settings.database_url is not None:
                    database = f" (database {mask_url(settings.database_url)})"
                    password = _password(settings.database_url)
                app.state.settings = settings
                current_default_thread_limiter().total_tokens = settings.thread_tokens
                # Before the variant's lifespan, which registers its pool hooks with it.
                await stack.enter_async_context(telemetry.running(app, settings))
                await stack.enter_async_context(lifespan(app))
            except Exception as exc:
                error = StartupError(f"{name} could not start{database}: {_one_line(exc, password)}")
                app.state.startup_error = error
                raise error from exc
            yield

    return run


def _one_line(exc: Exception, password: str | None) -> str:
    if isinstance(exc, StartupError):
        return str(exc)
    # SQLAlchemy wraps the driver's exception, whose own message is the informative part.
    cause = getattr(exc, "orig", None) or exc
    message = " ".join(str(cause).split())
    # Some drivers raise bare timeouts (asyncpg's connect timeout has no message at all).
    line = mask_url(f"{type(cause).__name__}: {message}" if message else f"{type(cause).__name__} (no message)")
    # Drivers may echo connection parameters outside any URL, where mask_url cannot see them.
    return line.replace(password, "***") if password else line


def _password(url: str) -> str | None:
    try:
        return unquote(urlsplit(url).password or "") or None
    except ValueError:
        return None


def _one_line_startup_failure(app: FastAPI) -> None:
    """Uvicorn logs a failed start-up's message as is, and Starlette puts a whole traceback in it. Wrapped around
    the router's lifespan handler rather than added as a middleware, so that no HTTP request passes through it."""
    handle_lifespan = app.router.lifespan

    async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_one_line(message: Message) -> None:
            error = getattr(app.state, "startup_error", None)
            if message["type"] == "lifespan.startup.failed" and error is not None:
                message = {**message, "message": str(error)}
            await send(message)

        await handle_lifespan(scope, receive, send_one_line)

    app.router.lifespan = lifespan  # type: ignore[method-assign]


def _health(
    name: str, variant: VariantSpec, db_wait: str, driver_pool: Callable[[AppSettings], DriverPool] | None
) -> Callable[[Request], Awaitable[HealthResponse]]:
    async def health(request: Request) -> HealthResponse:
        settings: AppSettings = request.app.state.settings
        url = settings.database_url
        return HealthResponse(
            variant=name,
            **variant,
            db_wait=db_wait,
            config=HealthConfig(
                pool_size=settings.pool_size,
                max_overflow=settings.max_overflow,
                pool_timeout_s=settings.pool_timeout_s,
                pool_pre_ping=settings.pool_pre_ping,
                # Read back from anyio rather than settings, so /health shows the limit actually in force.
                thread_tokens=int(current_default_thread_limiter().total_tokens),
                database_url=None if url is None else mask_url(url),
                telemetry=settings.telemetry,
                driver_pool=None if driver_pool is None else driver_pool(settings),
            ),
        )

    return health
