"""ModelVersion (modelops.dev/v1alpha1): one trained model, immutable once trained."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .base import (
    DNS_1035,
    DNS_LABEL,
    ApiModel,
    Condition,
    FreeForm,
    ResourceRequirements,
    StatusModel,
    cel,
)
from .estimators import EstimatorName, MetricName, Preprocessing

DATASET_URI = (
    r"^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/.+\.(csv|parquet)|file:///.+\.(csv|parquet)|sklearn:[a-z_]+)$"
)


class Dataset(ApiModel):
    """Where the training data is and which columns matter."""

    uri: str = Field(
        pattern=DATASET_URI,
        description="pvc://<claim>/<path>.csv|.parquet, file:///<path>.csv|.parquet, or sklearn:<name> "
        "(iris, wine, breast_cancer, diabetes, ...) for demos.",
    )
    target: str | None = Field(
        default=None, description="Target column. Optional for sklearn: data sets (their own target)."
    )
    features: list[str] | None = Field(
        default=None, description="Feature columns; default every column but the target."
    )
    categorical: list[str] = Field(
        default_factory=list, description="Columns to treat as categorical (one-hot encoded)."
    )


class Estimator(ApiModel):
    """A scikit-learn estimator from the allow-list, wrapped in a preprocessing pipeline."""

    class_: EstimatorName = Field(alias="class", description="Estimator class from the allow-list.")
    params: FreeForm = Field(
        default_factory=dict, description="Constructor parameters, checked against the estimator's own."
    )
    preprocessing: Preprocessing = Field(
        default="standard", description="Scaler for numeric features (categoricals are one-hot encoded)."
    )


class Split(ApiModel):
    """The held-out split used for evaluation; fixed seed makes training deterministic."""

    test_size: float = Field(default=0.25, gt=0, lt=1)
    seed: int = Field(default=42, ge=0)
    stratify: bool = Field(default=True, description="Stratify the split on the target (classifiers).")


class Training(ApiModel):
    """How to train: data, estimator, split and the Job's limits."""

    dataset: Dataset
    estimator: Estimator
    split: Split = Field(default_factory=Split)
    reference_bins: int = Field(
        default=10, ge=2, le=50, description="Quantile bins recorded per numeric feature for drift."
    )
    resources: ResourceRequirements | None = None
    backoff_limit: int = Field(default=1, ge=0, le=10)
    active_deadline_seconds: int = Field(default=3600, ge=10)
    image: str | None = Field(default=None, description="Trainer image; default from operator settings.")


class Gate(ApiModel):
    """A floor and/or ceiling on one evaluation metric."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("has(self.min) || has(self.max)", "a gate needs min, max or both"),
                cel(
                    "!has(self.min) || !has(self.max) || self.min <= self.max",
                    "gate min must be less than or equal to max",
                ),
            ]
        }
    }

    metric: MetricName
    min: float | None = None
    max: float | None = None


class ChampionComparison(ApiModel):
    """Champion/challenger: the new version must not be worse than the champion by more than allowed."""

    metric: MetricName
    min_improvement: float = Field(
        default=0.0,
        description="Required improvement over the champion (negative tolerates a small loss). "
        "For rmse/mae lower is better, and improvement means a decrease.",
    )


class Validation(ApiModel):
    gates: list[Gate] = Field(default_factory=list, max_length=20)
    champion: ChampionComparison | None = None


class Canary(ApiModel):
    """The analysis a canary must pass before promotion; a breach rolls back."""

    replicas: int = Field(default=1, ge=1, le=100)
    analysis_seconds: int = Field(
        default=120, ge=10, description="How long the canary runs beside the champion."
    )
    max_error_rate: float = Field(default=0.01, ge=0, le=1, description="5xx share allowed.")
    max_p99_latency_seconds: float = Field(default=0.5, gt=0)
    min_requests: int = Field(default=20, ge=0, description="Fewer requests than this: the analysis waits.")


class Rollout(ApiModel):
    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("self.strategy != 'Canary' || has(self.canary)", "rollout.canary is required for Canary"),
            ]
        }
    }

    strategy: Literal["Replace", "Canary"] = "Replace"
    canary: Canary | None = None


class Capture(ApiModel):
    """Opt-in: the server keeps served rows joined with their /feedback labels as a training set.

    The file is `<storage.mountPath>/<model>/_captured/<version>.csv` on the storage claim, i.e.
    `pvc://<storage.pvc>/<model>/_captured/` for a RetrainPolicy's `template.datasetUri` (the
    newest file of that folder is the current champion's). Columns: the model's features minus
    `exclude`, then the target (`training.dataset.target`, else `target`).
    """

    max_rows: int = Field(
        default=10_000, ge=10, le=1_000_000, description="Retention: the newest labelled rows kept."
    )
    exclude: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Columns never written (privacy). A child trained on the capture must then list "
        "its features without them (template.spec).",
    )


class Serving(ApiModel):
    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "!has(self.capture) || self.replicas <= 1",
                    "serving.capture needs replicas 0 or 1: each server rewrites the version's captured file",
                ),
            ]
        }
    }

    capture: Capture | None = Field(
        default=None, description="Collect served rows and their feedback labels for retraining (opt-in)."
    )
    replicas: int = Field(default=1, ge=0, le=100)
    resources: ResourceRequirements | None = None
    image: str | None = Field(default=None, description="Server image; default from operator settings.")
    rollout: Rollout = Field(default_factory=Rollout)
    drain_seconds: int = Field(
        default=30, ge=0, description="How long a superseded champion keeps serving before it is scaled down."
    )

    @model_validator(mode="after")
    def _one_capturing_replica(self) -> Serving:
        if self.capture is not None and self.replicas > 1:
            raise ValueError(
                "serving.capture needs replicas 0 or 1: each server rewrites the version's captured file"
            )
        return self


class Promotion(ApiModel):
    mode: Literal["Auto", "Manual"] = "Auto"
    request: str | None = Field(
        default=None,
        max_length=63,
        description="Set or change this token (e.g. a date) to ask for this version to become champion; "
        "the annotation modelops.dev/promote does the same. Rollback is promoting an older version.",
    )


class Storage(ApiModel):
    pvc: str = Field(default="modelops-artifacts", pattern=DNS_LABEL, description="Claim holding artifacts.")
    mount_path: str = Field(default="/artifacts", pattern=r"^/.+")


class ModelVersionSpec(ApiModel):
    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("self.model == oldSelf.model", "spec.model is immutable"),
                cel(
                    "self.training == oldSelf.training",
                    "spec.training is immutable: a trained model never changes; create a new ModelVersion",
                ),
            ]
        }
    }

    model: str = Field(pattern=DNS_1035, max_length=40, description="Model family; versions share it.")
    parent: str | None = Field(default=None, description="The version this one was retrained from.")
    training: Training
    validation: Validation = Field(default_factory=Validation)
    serving: Serving = Field(default_factory=Serving)
    promotion: Promotion = Field(default_factory=Promotion)
    storage: Storage = Field(default_factory=Storage)
    retired: bool = Field(default=False, description="Retire this version: its Deployment is removed.")


Phase = Literal[
    "Pending",
    "Training",
    "Rejected",
    "Deploying",
    "Canary",
    "Serving",
    "Superseded",
    "Retired",
    "Failed",
]
PHASES: tuple[str, ...] = Phase.__args__  # type: ignore[attr-defined]


class Bin(StatusModel):
    """A reference distribution: upper bin edges (last is +Inf) or categories, with their shares."""

    edges: list[float] | None = Field(
        default=None, description="Numeric feature: the interior bin edges (quantiles of the training data)."
    )
    categories: list[str] | None = Field(default=None, description="Categorical feature: the categories.")
    shares: list[float] = Field(
        description="Share of training rows in each bin (edges + 1 bins) or category."
    )
    samples: int | None = Field(
        default=None,
        description="Rows the shares were counted from; the drift test needs the reference's size.",
    )


class Artifact(StatusModel):
    uri: str = Field(description="Where the model files are (pvc://claim/path or s3://bucket/key).")
    sha256: str = Field(description="Digest of model.skops; the server refuses a file that does not match.")


class TrainingResult(StatusModel):
    """What the trainer reported, bound to one Job run by its uid."""

    job_uid: str | None = Field(
        default=None, description="The training Job run this result belongs to; others are ignored."
    )
    succeeded: bool = Field(default=True, description="False when the trainer failed (see message).")
    message: str | None = Field(default=None, description="Why training failed.")
    task: Literal["classification", "regression"] | None = Field(
        default=None, description="What the estimator does; decides the metrics."
    )
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Held-out metrics (accuracy, f1, r2, rmse, ...)."
    )
    dataset_digest: str | None = Field(default=None, description="sha256 of the training data as read.")
    artifact: Artifact | None = Field(default=None, description="The saved model.")
    features: list[dict[str, Any]] = Field(
        default_factory=list, description="The input schema: name, type and categories of each feature."
    )
    reference: dict[str, Bin] = Field(
        default_factory=dict, description="Per feature, the training distribution drift is measured against."
    )
    prediction_reference: Bin | None = Field(
        default=None, description="The distribution of the model's predictions on the held-out data."
    )
    rows: dict[str, int] = Field(default_factory=dict, description="Rows used: train and test.")
    finished_at: str | None = Field(default=None, description="When the trainer reported.")


class ServingStatus(StatusModel):
    deployment: str | None = Field(default=None, description="The server Deployment of this version.")
    service: str | None = Field(default=None, description="This version's own Service.")
    endpoint: str | None = Field(default=None, description="In-cluster URL of this version's Service.")
    replicas: int = Field(default=0, description="Server replicas the operator asked for.")
    ready_replicas: int = Field(default=0, description="Server replicas ready.")


class ModelVersionStatus(StatusModel):
    phase: Phase = Field(
        default="Pending",
        description="Pending (no status yet), Training, Rejected, Deploying, Canary, Serving, Superseded, Retired or Failed.",
    )
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation the operator last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Trained, Validated, Deployed, Promoted, Ready (kstatus), Reconciling, Stalled.",
    )
    training: TrainingResult | None = Field(default=None, description="What the trainer reported.")
    serving: ServingStatus | None = Field(default=None, description="The server, while one is deployed.")
    primary_metric: str | None = Field(
        default=None,
        description="The metric `kubectl get mv` shows (the champion comparison's, else a gate's).",
    )
    champion: bool = Field(
        default=False, description="True while the model's stable Service points at this version."
    )
    timestamps: dict[str, str] = Field(
        default_factory=dict,
        description="When each step happened: trainingStarted, trained, deployed, promoted, ...",
    )
    handled_promotion: str | None = Field(
        default=None, description="The promotion request (annotation or spec) last acted on."
    )
    message: str | None = Field(default=None, description="What is happening now, in one line.")


class ModelVersion(ApiModel):
    """The whole object as the operator reads it."""

    model_config = {"extra": "ignore"}

    api_version: str = "modelops.dev/v1alpha1"
    kind: str = "ModelVersion"
    metadata: FreeForm = Field(default_factory=dict)
    spec: ModelVersionSpec
    status: ModelVersionStatus = Field(default_factory=ModelVersionStatus)
