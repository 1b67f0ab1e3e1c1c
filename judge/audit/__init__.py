"""Human oversight: risk-based audit samples, the audit store, agreement estimates, the gate and canaries.

- :func:`draw_sample` draws judge decisions for review with exact inclusion probabilities;
- :class:`AuditStore` keeps samples, the append-only label history, reviewers and overrides;
- :func:`build_report` estimates judge-human agreement (design-weighted, per rubric, criterion and
  stratum, with the human-human ceiling and a prediction-powered estimate of quality);
- :func:`gate` decides, with an anytime-valid bound, whether training may use the judge's feedback;
- :func:`canary_check` flags judge drift on a frozen labelled anchor set;
- :func:`create_app` / :func:`run_server` serve the blind review UI (``judgeloop audit serve``).
"""

from judge.audit._agreement import agreement_of, human_quality, ppi_estimate
from judge.audit._canary import CanaryCheck, canary_check, load_eval_report
from judge.audit._gate import GateCheck, GateDecision, cs_lower_bound, cs_lower_bounds, gate, override_scope
from judge.audit._records import (
    RISK_STRATA,
    STRATA,
    AuditSample,
    HumanLabel,
    JudgeOutput,
    Override,
    SamplingRun,
    sample_id_for,
    scope_key,
)
from judge.audit._report import build_report, render_html
from judge.audit._sampling import SampleConfig, SamplingResult, decisions, draw_sample, judgment_scope, prompt_version
from judge.audit._schema import MIGRATIONS, SCHEMA_VERSION
from judge.audit._stats import cohen_kappa, gwet_ac1, krippendorff_alpha, weighted_accuracy
from judge.audit._store import AuditStore, AuditStoreError
from judge.audit._web import create_app, login_url, run_server

__all__ = [
    "MIGRATIONS",
    "RISK_STRATA",
    "SCHEMA_VERSION",
    "STRATA",
    "AuditSample",
    "AuditStore",
    "AuditStoreError",
    "CanaryCheck",
    "GateCheck",
    "GateDecision",
    "HumanLabel",
    "JudgeOutput",
    "Override",
    "SampleConfig",
    "SamplingResult",
    "SamplingRun",
    "agreement_of",
    "build_report",
    "canary_check",
    "cohen_kappa",
    "create_app",
    "cs_lower_bound",
    "cs_lower_bounds",
    "decisions",
    "draw_sample",
    "gate",
    "gwet_ac1",
    "human_quality",
    "judgment_scope",
    "krippendorff_alpha",
    "load_eval_report",
    "login_url",
    "override_scope",
    "ppi_estimate",
    "prompt_version",
    "render_html",
    "run_server",
    "sample_id_for",
    "scope_key",
    "weighted_accuracy",
]
