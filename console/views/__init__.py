"""The shell's pages, one module per area, as the apps are split:

- `site`           outside any organization: health check, the way in, CSRF failure
- `organizations`  creating an organization, its overview page
- `settings`       the organization's settings (Admins)
- `workspaces`     the workspace list and its actions (Admins)
- `audit`          the audit log: list, detail, exports (Admins)
"""
