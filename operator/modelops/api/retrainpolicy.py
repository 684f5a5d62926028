"""RetrainPolicy (modelops.dev/v1alpha1): keeps one model healthy by retraining it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import DNS_1035, ApiModel, Condition, FreeForm, StatusModel, cel
from .modelversion import Search

DURATION = r"^([0-9]+(ms|s|m|h|d))+$"


class DriftTrigger(ApiModel):
    """Retrain when live feature distributions move away from the training reference."""

    method: Literal["psi", "ks", "jensenShannon"] = "psi"
    threshold: float = Field(
        default=0.25,
        gt=0,
        description="Effect size: a feature drifts when its score is at or above this and the test rejects.",
    )
    alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Significance level of the chi-square test of the live bin counts against the reference.",
    )
    correction: Literal["benjaminiHochberg", "bonferroni", "none"] = Field(
        default="benjaminiHochberg",
        description="Multiple-testing correction across features: false alarms per evaluation stay at most alpha.",
    )
    features: list[str] | None = Field(default=None, description="Features to watch; default all.")
    min_samples: int = Field(
        default=100,
        ge=1,
        description="Fewer live samples: result Unknown. 100 detects a PSI 0.25 shift on 10 bins with ~90% power at alpha 0.01.",
    )
    consecutive: int = Field(
        default=2, ge=1, le=100, description="Drifted evaluations in a row before acting."
    )


class PerformanceTrigger(ApiModel):
    """Retrain when online accuracy (or error) from ground-truth feedback crosses a floor."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "has(self.floor) != has(self.ceiling)", "performance needs exactly one of floor, ceiling"
                ),
            ]
        }
    }

    metric: Literal["accuracy", "mae"] = "accuracy"
    floor: float | None = Field(default=None, description="Retrain when the online metric falls below this.")
    ceiling: float | None = Field(default=None, description="Retrain when the online error rises above this.")
    min_labels: int = Field(default=50, ge=1)


class ScheduleTrigger(ApiModel):
    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("has(self.every) != has(self.cron)", "schedule needs exactly one of every, cron"),
            ]
        }
    }

    every: str | None = Field(default=None, pattern=DURATION, description="A period, e.g. 2160h (quarterly).")
    cron: str | None = Field(default=None, description="A cron expression, e.g. '0 3 1 */3 *'.")


class Triggers(ApiModel):
    drift: DriftTrigger | None = None
    performance: PerformanceTrigger | None = None
    schedule: ScheduleTrigger | None = None


class Template(ApiModel):
    """Overrides applied to the champion's spec to make the child."""

    dataset_uri: str | None = Field(
        default=None,
        pattern=r"^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/.+|file:///.+|s3://[a-z0-9][-a-z0-9.]{1,61}[a-z0-9]/.+"
        r"|https://[^/]+/.*[^/]|sklearn:[a-z_]+)$",
        description="New training data for the child. May hold strftime fields of the trigger time "
        "(UTC: %Y %m %d %H %M %S %j %G %V %u %y %b, %%) and end in / for the newest .csv/.parquet file "
        "of a folder (not over https); resolved by a Job before the child is made.",
    )
    params: FreeForm | None = Field(default=None, description="Estimator params merged over the champion's.")
    spec: FreeForm | None = Field(default=None, description="A JSON merge patch over the champion's spec.")
    search: Search | None = Field(
        default=None,
        description="Run this hyperparameter search for the child. Unset: a child of a champion that "
        "searched trains once on the champion's best parameters (status.training.search.bestParams).",
    )


class Retention(ApiModel):
    keep_retired: int = Field(default=3, ge=0, description="Superseded/Retired versions to keep.")
    delete_artifacts: bool = Field(
        default=False, description="Also delete the artifacts of deleted versions."
    )


class Prometheus(ApiModel):
    url: str | None = Field(
        default=None, pattern=r"^https?://.+", description="Default from operator settings."
    )


class RetrainPolicySpec(ApiModel):
    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [cel("self.model == oldSelf.model", "spec.model is immutable")]
        }
    }

    model: str = Field(pattern=DNS_1035, max_length=40)
    prometheus: Prometheus = Field(default_factory=Prometheus)
    interval: str = Field(default="60s", pattern=DURATION, description="How often to evaluate.")
    window: str = Field(default="10m", pattern=DURATION, description="PromQL range for increase().")
    triggers: Triggers = Field(default_factory=Triggers)
    template: Template = Field(default_factory=Template)
    cooldown: str = Field(default="30m", pattern=DURATION, description="Minimum time between two retrains.")
    max_concurrent: int = Field(default=1, ge=1, le=10, description="Children in flight at once.")
    retention: Retention = Field(default_factory=Retention)
    suspend: bool = Field(default=False, description="Evaluate and report, but never retrain.")


class FeatureResult(StatusModel):
    score: float | None = Field(
        default=None, description="The drift score; null when it could not be judged."
    )
    samples: int = Field(default=0, description="Live values in the window.")
    result: Literal["Drifted", "Stable", "Unknown"] = Field(
        default="Unknown", description="Unknown (too few samples, no data) never triggers a retrain."
    )
    band: str | None = Field(default=None, description="PSI band: none (< 0.1), moderate (< 0.25) or major.")
    error: str | None = Field(default=None, description="Why the feature could not be judged.")
    p_value: float | None = Field(
        default=None, description="The significance test's p-value after the correction across features."
    )
    span: Literal["interval", "window"] | None = Field(
        default=None, description="What was judged: the newest interval, or the whole window."
    )


class Trigger(StatusModel):
    time: str = Field(description="When the retrain was decided.")
    reason: Literal["drift", "performance", "schedule", "manual"] = Field(description="What triggered it.")
    child: str = Field(description="The ModelVersion created for it.")
    detail: str = Field(default="", description="The evidence, in one line.")
    dataset_uri: str | None = Field(default=None, description="The child's data, as resolved.")
    dataset_digest: str | None = Field(default=None, description="sha256 of that data, as resolved.")
    outcome: Literal["NoNewData", "DatasetUnresolved"] | None = Field(
        default=None, description="Why no child was made for this decision (lastSkipped only)."
    )


class Deletion(StatusModel):
    """A version retention deleted: the audit trail of what is gone, kept where it survives."""

    time: str = Field(description="When retention decided it.")
    version: str = Field(description="The ModelVersion deleted.")
    artifacts: bool = Field(default=False, description="Whether its artifacts were deleted with it.")
    reason: str = Field(default="", description="Which limit it was over, in one line.")


class RetrainPolicyStatus(StatusModel):
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation the operator last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Evaluated, Ready (kstatus), Reconciling, Stalled."
    )
    champion: str | None = Field(default=None, description="The version being watched.")
    last_evaluation_time: str | None = Field(default=None, description="When Prometheus was last queried.")
    last_drift_score: float | None = Field(default=None, description="The highest feature score last time.")
    features: dict[str, FeatureResult] = Field(
        default_factory=dict, description="The last drift verdict per feature."
    )
    online: dict[str, Any] | None = Field(
        default=None, description="The last online metric from feedback labels, and its verdict."
    )
    consecutive_drifted: int = Field(default=0, description="Drifted evaluations in a row.")
    last_trigger: Trigger | None = Field(default=None, description="The latest retrain.")
    history: list[Trigger] = Field(
        default_factory=list, description="Recent retrains, newest last (bounded)."
    )
    handled_request: str | None = Field(
        default=None, description="The manual request (modelops.dev/retrain annotation) last acted on."
    )
    pending: Trigger | None = Field(
        default=None, description="A retrain decided but whose child is not confirmed yet (crash safety)."
    )
    sequence: int = Field(default=0, description="Triggers so far; numbers the children's names.")
    last_skipped: Trigger | None = Field(
        default=None,
        description="The latest retrain decided but not made (no new data, or data not resolved); "
        "the cooldown counts from it.",
    )
    deletions: list[Deletion] = Field(
        default_factory=list,
        description="Versions retention deleted, newest last (bounded); written before the deletion.",
    )
    last_schedule_time: str | None = Field(default=None, description="When the schedule last fired.")
    evaluation_failures: int = Field(
        default=0, description="Failed evaluations in a row; retries back off (interval x 2^n, at most 8x)."
    )


class RetrainPolicy(ApiModel):
    model_config = {"extra": "ignore"}

    api_version: str = "modelops.dev/v1alpha1"
    kind: str = "RetrainPolicy"
    metadata: FreeForm = Field(default_factory=dict)
    spec: RetrainPolicySpec
    status: RetrainPolicyStatus = Field(default_factory=RetrainPolicyStatus)
