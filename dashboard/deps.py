"""FastAPI dependencies and their `Annotated` aliases, plus the one way to refuse a query value.

Routers declare what they need (`CacheDep`, `SweepDep`, `SettingsDep`, `LimitQ` ...) and never
reach into `app.state` themselves. `store_error` answers a tracking store that is down (503) or refuses (502). `invalid_query` raises FastAPI's own validation error so that
a bad objective or column name has exactly the documented 422 shape (HTTPValidationError) with
`loc` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NoReturn

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from coe_sweep.tracking import TrackingUnavailable
from coe_sweep.tracking.connection import redact
from coe_sweep.units import BYTES_ACCEPTED, parse_bytes
from dashboard.answers import parse_objectives
from dashboard.cache import SweepCache, SweepData, UnknownSweep
from dashboard.schemas import ErrorMessage
from dashboard.settings import Settings

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorMessage, "description": "unknown sweep or trial (named in `detail`)"}}
STORE_ERRORS: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorMessage, "description": "the tracking store refused the read (its answer in `detail`)"},
    503: {"model": ErrorMessage, "description": "the tracking store is unreachable (which one and why in `detail`)"},
}


def get_cache(request: Request) -> SweepCache:
    return request.app.state.cache


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


CacheDep = Annotated[SweepCache, Depends(get_cache)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]

SweepKey = Annotated[str, Path(min_length=1, max_length=256, description="sweep id (parent run id) or name")]


def get_sweep(sweep: SweepKey, cache: CacheDep) -> SweepData:
    try:
        return cache.data(sweep)
    except UnknownSweep as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


SweepDep = Annotated[SweepData, Depends(get_sweep)]

LimitQ = Annotated[int, Query(ge=1, le=1000, description="rows per page (1..1000)")]
OffsetQ = Annotated[int, Query(ge=0, le=1_000_000_000, description="rows to skip")]


def _parser_message(parse: Callable[[str], Any]) -> Callable[[str], str | None]:
    def explain(value: str) -> str | None:
        try:
            parse(value)
        except ValueError as exc:
            return str(exc)
        return None
    return explain


# What a pattern-checked parameter accepts, in words (FastAPI's own message only quotes the regex);
# where a parser exists its own message (naming the bad part and listing accepted values) is used.
PARAM_EXPLAINERS: dict[str, Callable[[str], str | None]] = {
    "max_memory": _parser_message(lambda value: parse_bytes(value, "max_memory")),
    "objectives": _parser_message(parse_objectives),
}
PARAM_HINTS = {
    "max_memory": "a positive size in bytes, optionally with a unit: 2000000000, 2e9, 2GB, 1.5GiB, 512MB",
    "objectives": "2-3 distinct comma-separated NAME[:min|max], e.g. final_val_loss:min,peak_memory_bytes:min",
    "sort": "a column name of the trials frame, e.g. final_val_loss",
    "columns": "comma-separated column names of the trials frame",
    "budget": "a budget label or FLOPs of the sweep, e.g. 1e15",
}


async def store_error(request: Request, exc: Exception) -> JSONResponse:
    """503 when the tracking store cannot be reached, 502 when it refused: JSON naming the store (credentials
    redacted) and what failed, instead of a bare 500."""
    status = 503 if isinstance(exc, TrackingUnavailable) else 502
    return JSONResponse(status_code=status, content={"detail": redact(str(exc))},
                        headers={"Retry-After": "5"} if status == 503 else None)


async def explain_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 body, with each message naming the parameter and the value it refused."""
    errors = []
    for error in exc.errors():
        error = dict(error)
        name = str(error["loc"][-1]) if error.get("loc") else ""
        if name and "input" in error and not str(error.get("msg", "")).startswith(f"{name}="):
            pattern = error.get("type") == "string_pattern_mismatch"
            explained = PARAM_EXPLAINERS[name](str(error["input"])) if pattern and name in PARAM_EXPLAINERS else None
            hint = PARAM_HINTS.get(name) if pattern else None
            error["msg"] = explained or (f"{name}={error['input']!r} is invalid: "
                                         + (f"expected {hint}" if hint else error["msg"]))
        error.pop("ctx", None) if error.get("type") == "value_error" else None
        errors.append(error)
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": errors}))


def invalid_query(param: str, value: Any, accepted: str = "", *, message: str | None = None) -> NoReturn:
    """422 naming the query parameter, the value and what is accepted (or a complete `message`)."""
    raise RequestValidationError([{
        "type": "value_error",
        "loc": ("query", param),
        "msg": message or f"{param}={value!r} is invalid: expected {accepted}",
        "input": value,
    }])


def max_memory_query(max_memory: str | None) -> float | None:
    """The optional `max_memory` query ('2GB', '512MiB', bytes) in bytes; 422 naming it when malformed."""
    if max_memory is None:
        return None
    try:
        return parse_bytes(max_memory, "max_memory")
    except ValueError:
        invalid_query("max_memory", max_memory, BYTES_ACCEPTED)
