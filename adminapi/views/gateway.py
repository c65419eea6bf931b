"""The gateway's endpoints, described for /v1/openapi.json beside the Admin API's. They are
served by gateway/app.py (the lean hot path, which imports nothing of this app); these entries
only describe them (`served=False`): what the gateway itself reads of a request (model,
max_tokens, stream), the answers' outer shape, and its refusals. Bodies are otherwise Anthropic's
Messages API and pass through unchanged, so the models allow any further field."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..api import ENDPOINTS, Endpoint


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class MessageParam(_Open):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class MessagesRequest(_Open):
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int = Field(ge=1, le=1_000_000)
    messages: list[MessageParam]
    stream: bool = False


class CountTokensRequest(_Open):
    model: str = Field(min_length=1, max_length=256)
    messages: list[MessageParam]


class Message(_Open):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    content: list[dict[str, Any]]
    model: str
    stop_reason: str | None
    usage: dict[str, Any]


class TokenCount(_Open):
    input_tokens: int


class ModelInfo(_Open):
    id: str
    type: Literal["model"] = "model"
    display_name: str
    created_at: str


class ModelPage(_Open):
    data: list[ModelInfo]
    has_more: bool
    first_id: str | None
    last_id: str | None


class ModelListParams(BaseModel):
    limit: int = Field(20, ge=1, le=1000)
    after_id: str | None = None
    before_id: str | None = None


def _described(method, path, summary, response, *, body=None, query=None, description=""):
    def not_here(call):  # pragma: no cover - served by gateway/app.py
        raise NotImplementedError

    not_here.__name__ = summary.lower().replace(" ", "_").replace("(", "").replace(")", "")
    ENDPOINTS.append(
        Endpoint(
            method=method,
            path=path,
            function=not_here,
            summary=summary,
            response=response,
            body=body,
            query=query,
            tag="Gateway",
            description=description,
            served=False,
        )
    )


GATEWAY_AUTH = (
    "Authenticated by a console API key (csk_…, x-api-key or Authorization: Bearer); an admin "
    "key is refused here. Forwarded to the organization's upstream after the workspace's rules "
    "and the spending caps are checked; exactly one usage event per request."
)
_described(
    "POST",
    "/v1/messages",
    "Create a message",
    Message,
    body=MessagesRequest,
    description=GATEWAY_AUTH + " With stream: true the answer is Anthropic's SSE stream.",
)
_described(
    "POST",
    "/v1/messages/count_tokens",
    "Count tokens",
    TokenCount,
    body=CountTokensRequest,
    description=GATEWAY_AUTH,
)
_described(
    "GET",
    "/v1/models",
    "List models (the workspace's allowed ones)",
    ModelPage,
    query=ModelListParams,
    description=GATEWAY_AUTH,
)
