"""`GET /v1/openapi.json`: an OpenAPI 3.1 description generated from the endpoint registry
(adminapi.api.ENDPOINTS) and its pydantic models, the ones requests are validated with and
answers serialized from. Open to anyone: it describes the API, it holds nothing of anyone's."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Literal

import orjson
from pydantic import BaseModel, TypeAdapter

from . import ids
from .api import ENDPOINTS, Endpoint, _is_list

REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    type: Literal["error"] = "error"
    error: ErrorDetail
    request_id: str | None = None


def _schema(kind: Any, components: dict, mode: str) -> dict:
    schema = TypeAdapter(kind).json_schema(ref_template=REF, mode=mode)
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    if schema.get("type") == "object" and "title" in schema and isinstance(kind, type):
        components.setdefault(schema["title"], schema)
        return {"$ref": REF.format(model=schema["title"])}
    return schema


def _query_parameters(model: type[BaseModel], components: dict) -> list[dict]:
    schema = model.model_json_schema(ref_template=REF)
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        is_list = _is_list(model.model_fields[name].annotation)
        prop = {k: v for k, v in prop.items() if k not in ("title", "description")}
        parameters.append(
            {
                "name": f"{name}[]" if is_list else name,
                "in": "query",
                "required": name in required,
                "description": model.model_fields[name].description or "",
                "schema": prop,
                **({"style": "form", "explode": True} if is_list else {}),
            }
        )
    return parameters


ADMIN_REFUSALS = (
    ("400", "Bad input (invalid_request_error naming the field)"),
    ("401", "No valid admin key (authentication_error)"),
    ("403", "The key's owner may not do this (permission_error)"),
    ("404", "Not found in this organization (not_found_error)"),
)
GATEWAY_REFUSALS = (
    ("400", "Bad input (invalid_request_error)"),
    ("401", "No valid console key (authentication_error)"),
    ("403", "Not allowed here: model, upstream or workspace rules (permission_error)"),
    ("404", "Not found (not_found_error)"),
    ("408", "The body did not arrive in time"),
    ("413", "The body exceeds 32 MB (request_too_large)"),
    ("429", "Too many refused requests from this address, or the upstream's rate limit"),
    ("500", "The upstream failed (api_error)"),
    ("502", "The upstream could not be reached"),
    ("504", "The upstream timed out (timeout_error)"),
    ("529", "The upstream is overloaded (overloaded_error)"),
)


def _operation(item: Endpoint, components: dict) -> dict:
    parameters = []
    for name in _path_names(item.path):
        kind = item.path_ids.get(name)
        schema: dict = {"type": "string"}
        if kind:
            prefix = ids.PREFIXES[kind]
            schema["pattern"] = f"^{prefix}[0-9A-Za-z]{{{ids.BODY_LENGTH}}}$"
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    if item.query is not None:
        parameters.extend(_query_parameters(item.query, components))
    error = {"$ref": REF.format(model="ErrorResponse")}
    responses: dict[str, Any] = {
        "200": {
            "description": "OK",
            "content": {
                "application/json": {"schema": _schema(item.response, components, "serialization")}
            },
        }
    }
    refusals = ADMIN_REFUSALS if item.served else GATEWAY_REFUSALS
    for status, what in refusals:
        responses[status] = {
            "description": what,
            "content": {"application/json": {"schema": error}},
        }
    operation: dict[str, Any] = {
        "operationId": item.operation_id,
        "summary": item.summary,
        "tags": [item.tag] if item.tag else [],
        "parameters": parameters,
        "responses": responses,
        "security": [{"AdminKey": []}] if item.served else [{"ConsoleKey": []}],
    }
    if item.description:
        operation["description"] = item.description
    if item.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": _schema(item.body, components, "validation")}
            },
        }
    return operation


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _component_name(name: str) -> str:
    """OpenAPI component names are [A-Za-z0-9._-]: `Page[User]` becomes `Page_User`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def _renamed(spec: dict) -> dict:
    schemas = spec["components"]["schemas"]
    renames = {name: _component_name(name) for name in schemas if _component_name(name) != name}
    text = json.dumps(spec)
    for old, new in renames.items():
        text = text.replace(json.dumps(REF.format(model=old)), json.dumps(REF.format(model=new)))
    spec = json.loads(text)
    spec["components"]["schemas"] = {
        renames.get(name, name): schema for name, schema in spec["components"]["schemas"].items()
    }
    return spec


@lru_cache(maxsize=1)
def build() -> dict:
    components: dict[str, Any] = {}
    _schema(ErrorResponse, components, "serialization")
    paths: dict[str, dict] = {}
    for item in ENDPOINTS:
        paths.setdefault(item.path, {})[item.method.lower()] = _operation(item, components)
    return _renamed(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "Console Admin API and gateway",
                "version": "1",
                "description": (
                    "Anthropic's Admin API as the official SDK's client.organization speaks it, "
                    "served by this console for its organizations (authenticated by admin keys), "
                    "plus POST /v1/organizations/api_keys, which Anthropic's API does not have."
                ),
            },
            "paths": paths,
            "components": {
                "schemas": components,
                "securitySchemes": {
                    "AdminKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}
                },
            },
        }
    )


@lru_cache(maxsize=1)
def document() -> bytes:
    return orjson.dumps(build())


__all__ = ["build", "document"]
