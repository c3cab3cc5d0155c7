"""FastAPI dependencies and their `Annotated` aliases, plus the one way to refuse a query value.

Routers declare what they need (`CacheDep`, `SweepDep`, `SettingsDep`, `LimitQ` ...) and never
reach into `app.state` themselves. `invalid_query` raises FastAPI's own validation error so that
a bad objective or column name has exactly the documented 422 shape (HTTPValidationError) with
`loc` naming the parameter.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError

from dashboard.cache import SweepCache, SweepData, UnknownSweep
from dashboard.schemas import ErrorMessage
from dashboard.settings import Settings

NOT_FOUND = {404: {"model": ErrorMessage, "description": "unknown sweep or trial (named in `detail`)"}}


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


def invalid_query(param: str, value: Any, accepted: str = "", *, message: str | None = None) -> NoReturn:
    """422 naming the query parameter, the value and what is accepted (or a complete `message`)."""
    raise RequestValidationError([{
        "type": "value_error",
        "loc": ("query", param),
        "msg": message or f"{param}={value!r} is invalid: expected {accepted}",
        "input": value,
    }])
