"""The Admin API's endpoints, one module per resource of the SDK's `client.organization`.
Importing this package registers them (adminapi.api.ENDPOINTS)."""

from . import api_keys, invites, organization, reports, users, workspaces  # noqa: F401
