"""Roles and THE permission table: every authorisation decision looks a permission up here.

Reads are open to every role; acting on the platform is split by job: Risk and Ops may flip the
kill switch and change risk state, Dev and Ops run backtests, Ops and System (automation such as
the supervisor or a scheduler) pause and resume strategies; Risk and Ops read the audit of control
actions.
"""

from __future__ import annotations

from enum import Enum


class Role(str, Enum):
    OPS = "ops"
    RISK = "risk"
    DEV = "dev"
    SYSTEM = "system"


class Permission(str, Enum):
    READ = "read"  # positions, orders, trades, risk status, metrics, strategies, backtest results
    RISK_CONTROL = "risk_control"  # kill switch, trading state
    BACKTEST = "backtest"  # start backtests
    STRATEGY_CONTROL = "strategy_control"  # pause / resume strategies
    AUDIT_READ = "audit_read"  # the audit of control actions (GET /api/audit)


PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OPS: frozenset({Permission.READ, Permission.RISK_CONTROL, Permission.BACKTEST, Permission.STRATEGY_CONTROL,
                         Permission.AUDIT_READ}),
    Role.RISK: frozenset({Permission.READ, Permission.RISK_CONTROL, Permission.AUDIT_READ}),
    Role.DEV: frozenset({Permission.READ, Permission.BACKTEST}),
    Role.SYSTEM: frozenset({Permission.READ, Permission.STRATEGY_CONTROL}),
}


def parse_role(text: str) -> Role:
    """A role from any case (``Ops``, ``OPS``, ``ops``); ValueError naming the roles otherwise."""
    try:
        return Role(str(text).strip().lower())
    except ValueError:
        raise ValueError(f"role {text!r} is not one of: {', '.join(r.value for r in Role)}") from None


def allows(role: Role, permission: Permission) -> bool:
    return permission in PERMISSIONS[role]
