"""How an Admin API endpoint is declared, served and described, in one place.

Each endpoint is a function registered with `@endpoint(method, path, query=…, body=…,
response=…)`: the pydantic models it names are what the request is validated against and what
the answer is serialized from, and the same registry generates the URL patterns (urls.py) and
the OpenAPI description (openapi.py). So the description cannot drift from what is served.

Served by adminapi.asgi, a lean ASGI app beside the gateway's (decision 0016: Django's handler
costs too much and opens a database connection per request under ASGI). A request goes:
authenticate the admin key (apikeys.selectors.authenticate_admin_key, read on
every request, so a revoked key is refused from the next request on) → find the endpoint → read
path ids, query and body through their models → call the function inside `acting_via(key)`, so
the services' audit rows name the admin key beside its owner → serialize. Every refusal is an
`ApiError` answered in Anthropic's shape; nothing reaches the client as a 500 page.
"""

from __future__ import annotations

import logging
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson
from django.core.exceptions import ValidationError
from django.http import QueryDict
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as SchemaError

from apikeys.selectors import AdminKeyCheck, authenticate_admin_key
from apikeys.services import note_admin_key_used
from audit.context import RequestOrigin, acting_via, request_origin

from . import ids
from .errors import (
    ApiError,
    error_body,
    from_schema_error,
    from_validation_error,
    invalid,
    new_request_id,
)

logger = logging.getLogger("adminapi")

MISSING_KEY = (
    "x-api-key header is required: use an admin key (cak_…), which an Admin creates in this "
    "console (API keys → Admin keys)."
)


@dataclass
class ApiRequest:
    """What an endpoint may read of the HTTP request (built by adminapi.asgi)."""

    method: str
    path: str
    query: QueryDict
    headers: dict[str, str]  # lower-case names
    body: bytes
    origin: RequestOrigin
    request_id: str = field(default_factory=new_request_id)


@dataclass
class AdminCall:
    """One authenticated Admin API request, as the endpoint functions see it."""

    request: ApiRequest
    check: AdminKeyCheck
    query: Any = None
    body: Any = None

    @property
    def membership(self):
        return self.check.membership

    @property
    def organization(self):
        return self.check.membership.organization

    @property
    def actor(self):
        return self.check.membership.user


@dataclass
class Endpoint:
    method: str
    path: str  # OpenAPI style: /v1/organizations/users/{user_id}
    function: Callable[..., Any]
    summary: str
    response: Any
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    path_ids: dict[str, str] = field(default_factory=dict)  # path parameter -> id kind
    tag: str = ""
    description: str = ""
    served: bool = True  # False: described here, served elsewhere (the gateway)

    @property
    def operation_id(self) -> str:
        return self.function.__name__


ENDPOINTS: list[Endpoint] = []


def endpoint(
    method: str,
    path: str,
    *,
    summary: str,
    response: Any,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    path_ids: dict[str, str] | None = None,
    tag: str = "",
    description: str = "",
):
    def register(function):
        ENDPOINTS.append(
            Endpoint(
                method=method,
                path=path,
                function=function,
                summary=summary,
                response=response,
                query=query,
                body=body,
                path_ids=path_ids or {},
                tag=tag,
                description=description or (function.__doc__ or "").strip(),
            )
        )
        return function

    return register


# -- reading a request -------------------------------------------------------------------------


def _is_list(annotation) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return True
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_is_list(arg) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _is_list(typing.get_args(annotation)[0])
    return False


def read_query(request: ApiRequest, model: type[BaseModel]):
    """The query string through `model`. Lists come as `name[]=a&name[]=b` (the SDKs' style)
    or `name=a&name=b`; a scalar given twice is refused rather than guessed."""
    values: dict[str, Any] = {}
    for raw_name in request.query:
        name = raw_name.removesuffix("[]")
        model_field = model.model_fields.get(name)
        if model_field is None:
            continue  # unknown parameters are ignored, as Anthropic's API does
        items = request.query.getlist(raw_name)
        if _is_list(model_field.annotation):
            values.setdefault(name, []).extend(items)
        elif len(items) > 1 or name in values:
            raise invalid(name, "Give this parameter once.")
        else:
            values[name] = items[0]
    try:
        return model.model_validate(values)
    except SchemaError as error:
        raise from_schema_error(error, where="query") from None


def read_body(request: ApiRequest, model: type[BaseModel]):
    raw = request.body
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError("invalid_request_error", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError("invalid_request_error", "The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except SchemaError as error:
        raise from_schema_error(error, where="body") from None


def path_pks(endpoint_: Endpoint, kwargs: dict[str, str]) -> dict[str, int]:
    """Path ids opened to primary keys. A malformed id is bad input; a well-formed one of
    another organization is not found later, by the scoped lookup."""
    pks = {}
    for name, value in kwargs.items():
        kind = endpoint_.path_ids.get(name)
        if kind is None:
            continue
        pk = ids.decode(kind, value)
        if pk is None:
            raise invalid(name, f"{value!r} is not a {ids.PREFIXES[kind]}… id.")
        pks[name] = pk
    return pks


# -- answering -----------------------------------------------------------------------------------


def _adapter(response_type):
    adapter = _adapters.get(response_type)
    if adapter is None:
        adapter = _adapters[response_type] = TypeAdapter(response_type)
    return adapter


_adapters: dict[Any, TypeAdapter] = {}


def authenticate(request: ApiRequest) -> AdminKeyCheck:
    raw = request.headers.get("x-api-key", "").strip()
    if not raw:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        raw = token.strip() if scheme.lower() == "bearer" else ""
    if not raw:
        raise ApiError("authentication_error", MISSING_KEY)
    check = authenticate_admin_key(raw)
    if check.failure == "not_admin":
        raise ApiError("permission_error", check.message)
    if not check.ok:
        raise ApiError("authentication_error", check.message)
    return check


def key_label(check: AdminKeyCheck) -> str:
    return f"admin key {check.key.name} ({check.key.display})"


def _pattern(path: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$")


@cache
def routes() -> list[tuple[re.Pattern, dict[str, Endpoint]]]:
    by_path: dict[str, dict[str, Endpoint]] = {}
    for item in ENDPOINTS:
        if item.served:
            by_path.setdefault(item.path, {})[item.method] = item
    return [(_pattern(path), endpoints) for path, endpoints in by_path.items()]


def find(method: str, path: str) -> tuple[Endpoint, dict[str, str]]:
    for pattern, endpoints in routes():
        match = pattern.match(path)
        if match is not None and method in endpoints:
            return endpoints[method], match.groupdict()
    raise ApiError("not_found_error", f"{method} {path} not found.")


def handle(request: ApiRequest) -> tuple[int, bytes]:
    """One request, start to end: the status and the JSON body. Runs in a worker thread."""
    try:
        check = authenticate(request)
        endpoint_, kwargs = find(request.method, request.path)
        call = AdminCall(request=request, check=check)
        pks = path_pks(endpoint_, kwargs)
        if endpoint_.query is not None:
            call.query = read_query(request, endpoint_.query)
        if endpoint_.body is not None:
            call.body = read_body(request, endpoint_.body)
        note_admin_key_used(check.key)
        with request_origin(request.origin), acting_via(key_label(check)):
            try:
                result = endpoint_.function(call, **pks)
            except ValidationError as error:
                raise from_validation_error(error) from None
        return 200, _adapter(endpoint_.response).dump_json(result)
    except ApiError as error:
        return error.status, error_body(error, request.request_id)
    except Exception:
        logger.exception("Admin API error on request %s", request.request_id)
        return 500, error_body(ApiError("api_error", "Internal server error."), request.request_id)


__all__ = ["ENDPOINTS", "AdminCall", "ApiError", "ApiRequest", "endpoint", "handle"]
