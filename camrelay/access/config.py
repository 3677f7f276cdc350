"""Tunables of the access rules, with the defaults the issue names.

``AccessConfig.from_settings`` reads the ``[access]`` section of the settings
(``camrelay.settings.AccessSettings``, validated there).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from camrelay.access.accounts import Role


@dataclass(frozen=True)
class LockoutConfig:
    window_seconds: float = 15 * 60  # failures older than this are forgotten
    slow_after: int = 3  # failures before each further attempt is slowed
    slow_seconds: float = 1.0  # the delay added to a slowed attempt
    lock_after: int = 10  # failures of one account before it is locked
    lock_address_after: int = 30  # failures from one address before it is locked
    lock_seconds: float = 15 * 60


@dataclass(frozen=True)
class AccessConfig:
    emergency_hours: float = 2.0
    emergency_max_hours: float = 24.0
    emergency_roles: frozenset[Role] = frozenset({Role.OPERATOR, Role.ADMINISTRATOR})
    # besides the platform's approvers, may an administrator of the owning unit approve?
    owner_admins_approve: bool = False
    max_grant_days: int = 366
    heartbeat_seconds: float = 5.0
    watch_seconds: float = 0.5  # how often live views are re-checked (cut within 1 s)
    lockout: LockoutConfig = field(default_factory=LockoutConfig)

    @classmethod
    def from_settings(cls, settings: Any) -> AccessConfig:
        section = getattr(settings, "access", None)
        if section is None:
            return cls()
        known = {f.name for f in fields(cls)}
        values = {k: getattr(section, k) for k in known if hasattr(section, k)}
        if "emergency_roles" in values:
            values["emergency_roles"] = frozenset(Role(r) for r in values["emergency_roles"])
        if "lockout" in values:
            lockout = values["lockout"]
            values["lockout"] = LockoutConfig(**{f.name: getattr(lockout, f.name)
                                                 for f in fields(LockoutConfig)})
        return cls(**values)
