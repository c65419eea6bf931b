"""The Admin API's endpoints, one module per resource of the SDK's `client.organization`.
Importing this package registers them (adminapi.api.ENDPOINTS)."""

from . import (  # noqa: F401
    api_keys,
    gateway,
    increase_requests,
    invites,
    organization,
    reports,
    spend_limits,
    users,
    workspaces,
)
