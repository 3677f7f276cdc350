"""The roles a user account has: the access rules act on them, the settings name them
(``access.emergency_roles``), the CLI offers them."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMINISTRATOR = "administrator"
    APPROVER = "approver"
    OPERATOR = "operator"
    VIEWER = "viewer"
    TECHNICIAN = "technician"
    AUDITOR = "auditor"
    # an upper platform's service account (camrelay.federation): lists and watches only
    # what its federation credential shares
    FEDERATION = "federation"
