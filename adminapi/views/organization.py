"""`GET /v1/organizations/me`: the organization the admin key belongs to."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from .. import ids
from ..api import AdminCall, endpoint


class OrganizationInfo(BaseModel):
    id: str
    name: str
    type: Literal["organization"] = "organization"


@endpoint(
    "GET",
    "/v1/organizations/me",
    summary="The organization of the admin key",
    response=OrganizationInfo,
    tag="Organization",
)
def retrieve_organization(call: AdminCall) -> OrganizationInfo:
    organization = call.organization
    return OrganizationInfo(id=ids.encode("organization", organization.pk), name=organization.name)
