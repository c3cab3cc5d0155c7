"""Reaching an MLflow store: client construction, the fast reachability probe, error classification, and
the ONE redaction of credentials for everything the tracking layer lets out of the process.

MLflow's HTTP client retries a dead server for minutes by default (7 retries, backoff factor 2,
120 s timeout). The writer owns its retries (coe_sweep.tracking.journal.RetryPolicy), so the
HTTP layer is set to fail fast through MLflow's own environment variables; `setdefault` keeps any
value the user exported.

Credentials: a tracking URI may carry a password (`http://user:pw@host`), and MLflow's own error texts
quote the URI they failed on. `redact(text, *uris)` removes them from any text (URIs, error messages,
the spec YAML stored on the parent run, tracebacks); `RedactingFilter` applies it to every log record a
handler emits, tracebacks included. Everything that prints, logs or stores such a text goes through one
of the two.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import traceback
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from coe_sweep.tracking.records import TrackingUnavailable

log = logging.getLogger(__name__)

HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # coe_sweep.tracking retries (and journals) itself
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # set_terminated prints "View run" lines otherwise
}

# MLflow error codes that a retry can cure; every other MlflowException is permanent.
TRANSIENT_ERROR_CODES = frozenset({
    "INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "IO_ERROR", "SERVICE_UNDER_MAINTENANCE",
    "WORKSPACE_TEMPORARILY_UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "REQUEST_LIMIT_EXCEEDED",
    "RESOURCE_EXHAUSTED", "COULD_NOT_ACQUIRE_LOCK", "UNPARSEABLE_HTTP_ERROR",
})


def make_client(uri: str) -> MlflowClient:
    """An MlflowClient bound to `uri` (explicit run ids, no fluent active-run state)."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    return MlflowClient(tracking_uri=uri)


# `scheme://user:password@`: the password of any URI in a text (userinfo ends at the last '@' before the host)
_USERINFO_RE = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@?#'\"]*):(?P<password>[^\s/?#'\"]*)@")
# Environment variables whose values are credentials MLflow (or Ray) reads: never shown either.
CREDENTIAL_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "RAY_AUTH_TOKEN", "AWS_SECRET_ACCESS_KEY",
                  "AZURE_STORAGE_ACCESS_KEY", "DATABRICKS_TOKEN")
MIN_SECRET_CHARS = 4  # shorter values are too common as substrings to replace wherever they appear
MASK = "***"


def _secrets(uris: Iterable[str]) -> list[str]:
    """Passwords of `uris` (as written and percent-decoded) and credential env values, longest first."""
    found: set[str] = set()
    for uri in uris:
        try:
            password = urlsplit(str(uri)).password
        except ValueError:  # an unparsable netloc (bad port): the regex below still masks its password
            password = None
        if password:
            found |= {password, unquote(password), quote(unquote(password), safe="")}
    found |= {os.environ.get(name, "") for name in CREDENTIAL_ENV}
    return sorted((x for x in found if len(x) >= MIN_SECRET_CHARS), key=len, reverse=True)


def redact(text: str, *uris: str) -> str:
    """`text` with every credential replaced by ***: the password of any `scheme://user:password@host` in it,
    and, wherever they appear, the passwords of `uris` and the values of CREDENTIAL_ENV variables."""
    out = _USERINFO_RE.sub(lambda m: f"{m['head']}:{MASK}@", str(text))
    for secret in _secrets(uris):
        out = out.replace(secret, MASK)
    return out


def redact_uri(uri: str) -> str:
    """The URI with any password replaced by ***, safe for logs and error messages."""
    return redact(uri, uri)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's message and traceback (see `redact`) before it is written.

    The traceback is formatted here and stored as `exc_text`, which logging's Formatter prints instead of
    formatting the exception again."""

    def __init__(self, uris: Iterable[str] = ()) -> None:
        super().__init__()
        self.uris = tuple(uris)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, *self.uris)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact(text, *self.uris)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, *self.uris)
        return True


def install_redaction(*uris: str) -> None:
    """Put a RedactingFilter (for `uris`) on every handler of every logger configured so far: the root's
    (where coe_sweep's, MLflow's and Ray's records end up) and those of loggers with their own (uvicorn)."""
    loggers = [logging.getLogger()] + [logger for logger in logging.Logger.manager.loggerDict.values()
                                        if isinstance(logger, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
                handler.removeFilter(old)
            handler.addFilter(RedactingFilter(uris))


def scheme_of(uri: str) -> str:
    scheme = urlsplit(uri).scheme.lower()
    if "+" in scheme:  # postgresql+psycopg2, mysql+pymysql, ...
        scheme = scheme.split("+", 1)[0]
    return scheme or "file"


def sqlite_path(uri: str) -> Path | None:
    """Filesystem path of a sqlite URI (None for :memory:)."""
    rest = uri[len("sqlite://"):]
    if rest in ("", "/", "/:memory:"):
        return None
    return Path(rest[1:] if rest.startswith("/") else rest)


def error_code(exc: BaseException) -> str | None:
    return getattr(exc, "error_code", None) if isinstance(exc, MlflowException) else None


def is_transient(exc: BaseException) -> bool:
    """True when retrying later may succeed (store down, timeout, lock), False for a refusal."""
    if isinstance(exc, MlflowException):
        return exc.error_code in TRANSIENT_ERROR_CODES
    if isinstance(exc, OSError | TimeoutError):  # includes requests' ConnectionError
        return True
    return type(exc).__name__ in ("OperationalError", "DisconnectionError", "TimeoutError")


def unavailable(uri: str, why: str) -> TrackingUnavailable:
    return TrackingUnavailable(
        f"MLflow tracking store {redact_uri(uri)!r} is unreachable: {redact(why, uri)}. Start the tracking server "
        "(e.g. `mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db`) or "
        "set tracking.uri in the spec to a reachable store (default: sqlite:///<cwd>/mlflow.db).")


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Raise TrackingUnavailable within about `timeout_s` seconds if `uri` cannot be written to."""
    if not timeout_s > 0:
        raise ValueError(f"timeout_s={timeout_s!r} is invalid: expected a number > 0")
    scheme = scheme_of(uri)
    if scheme in ("http", "https"):
        _check_http(uri, timeout_s)
    elif scheme == "sqlite":
        _check_sqlite(uri, timeout_s)
    elif scheme == "file":
        _check_directory(uri, Path(urlsplit(uri).path or uri))
    else:
        _check_by_thread(uri, timeout_s)


def _check_http(uri: str, timeout_s: float) -> None:
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(get_default_host_creds(uri), "/api/2.0/mlflow/experiments/search", "GET",
                                max_retries=0, backoff_factor=0, timeout=timeout_s,
                                params={"max_results": 1}, raise_on_status=False)
    except Exception as exc:  # noqa: BLE001 - any failure to connect means unreachable
        raise unavailable(uri, short_error(exc, uri)) from exc
    if response.status_code != 200:
        raise unavailable(uri, f"GET /api/2.0/mlflow/experiments/search answered HTTP {response.status_code}: "
                               f"{redact(response.text[:200], uri)!r}")


def _check_sqlite(uri: str, timeout_s: float) -> None:
    path = sqlite_path(uri)
    if path is None:
        return
    if not path.is_absolute():
        path = Path.cwd() / path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unavailable(uri, f"cannot create the directory {str(path.parent)!r} ({exc.strerror})") from exc
    _check_directory(uri, path.parent)
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise unavailable(uri, f"the database file {str(path)!r} is not readable and writable")
        try:
            with closing(sqlite3.connect(path, timeout=timeout_s)) as conn:
                conn.execute("PRAGMA schema_version").fetchone()
        except sqlite3.Error as exc:
            raise unavailable(uri, f"{str(path)!r} is not a usable sqlite database ({exc})") from exc


def _check_directory(uri: str, directory: Path) -> None:
    if not directory.is_dir():
        raise unavailable(uri, f"the directory {str(directory)!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise unavailable(uri, f"the directory {str(directory)!r} is not writable")


def _check_by_thread(uri: str, timeout_s: float) -> None:
    """Other backends (postgresql, mysql, databricks): one real query, abandoned after timeout_s."""
    failure: list[BaseException] = []

    def probe() -> None:
        try:
            make_client(uri).search_experiments(max_results=1)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            failure.append(exc)

    thread = threading.Thread(target=probe, name="mlflow-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise unavailable(uri, f"no answer within {timeout_s:g} s")
    if failure:
        raise unavailable(uri, short_error(failure[0], uri)) from failure[0]


def short_error(exc: BaseException, *uris: str, limit: int = 300) -> str:
    """First line of an exception, credentials redacted (see `redact`) and urllib3's noise trimmed."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "Connection refused" in str(exc) or "NewConnectionError" in str(exc):
        return "connection refused (no server listening)"
    return redact(text, *uris)[:limit]
