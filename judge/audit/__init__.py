"""Human oversight: risk-based audit samples, the audit store, agreement estimates and the gate."""

from judge.audit._records import (
    RISK_STRATA,
    STRATA,
    AuditSample,
    HumanLabel,
    JudgeOutput,
    Override,
    sample_id_for,
)
from judge.audit._store import MIGRATIONS, SCHEMA_VERSION, AuditStore, AuditStoreError

__all__ = [
    "MIGRATIONS",
    "RISK_STRATA",
    "SCHEMA_VERSION",
    "STRATA",
    "AuditSample",
    "AuditStore",
    "AuditStoreError",
    "HumanLabel",
    "JudgeOutput",
    "Override",
    "sample_id_for",
]
