"""ModelVersion (modelops.dev/v1alpha1): one trained model, immutable once trained."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, WithJsonSchema, model_validator

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
from .estimators import EstimatorName, MetricName, Preprocessing, Scoring

DATASET_URI = (
    r"^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/.+\.(csv|parquet)|file:///.+\.(csv|parquet)"
    r"|s3://[a-z0-9][-a-z0-9.]{1,61}[a-z0-9]/.+\.(csv|parquet)|https://[^/]+/.+\.(csv|parquet)|sklearn:[a-z_]+)$"
)
S3_BUCKET = r"^[a-z0-9][-a-z0-9.]{1,61}[a-z0-9]$"
S3_PREFIX = r"^([^/]+(/[^/]+)*)?$"


class SecretKeyRef(ApiModel):
    """A Secret in the version's namespace holding S3 keys (`accessKeyId`, `secretAccessKey`)."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)


class S3Connection(ApiModel):
    """How pods reach an S3-compatible store. Without secretRef, the pod's own identity is used
    (IRSA / EKS Pod Identity / instance role: whatever the AWS SDK's default chain finds)."""

    secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret with keys accessKeyId and secretAccessKey; default: the pod's workload identity.",
    )
    endpoint_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/]+/?$",
        description="S3 endpoint for non-AWS stores (SeaweedFS, MinIO, Ceph); default AWS.",
    )
    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$", max_length=32)


class Dataset(ApiModel):
    """Where the training data is and which columns matter."""

    # No CEL rule keeps `exclude` apart from `target` and `features`: with unbounded lists and
    # strings its estimated cost exceeds the API server's budget. The admission webhook refuses
    # the overlap at apply (admission.py), and the trainer again for objects made without it.

    uri: str = Field(
        pattern=DATASET_URI,
        description="pvc://<claim>/<path>.csv|.parquet, file:///<path>.csv|.parquet, "
        "s3://<bucket>/<key>.csv|.parquet, https://<host>/<path>.csv|.parquet (read-only), or "
        "sklearn:<name> (iris, wine, breast_cancer, diabetes, ...) for demos.",
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
    exclude: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Columns dropped right after reading (e.g. personal data): never used, checked, "
        "binned, logged or stored.",
    )
    s3: S3Connection | None = Field(
        default=None,
        description="How to reach an s3:// dataset; default: spec.storage.s3's connection, else the pod's "
        "workload identity.",
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


class ColumnLimits(ApiModel):
    """Limits for one column, overriding the data-wide ones."""

    max_missing_fraction: float | None = Field(default=None, ge=0, le=1)
    min: float | None = Field(default=None, description="Lowest valid value (numeric columns).")
    max: float | None = Field(default=None, description="Highest valid value (numeric columns).")


class DataQuality(ApiModel):
    """Checks run on the data inside the training Job, before fitting; a breach fails the version.

    Ranges default to the parent version's observed [min, max]; categories and label shares are
    compared with the parent's, read from its artifact metadata.
    """

    min_rows: int | None = Field(default=None, ge=1, description="Fewer rows than this fails.")
    max_missing_fraction: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of missing values allowed per column; rows with a missing value are then dropped.",
    )
    max_duplicate_fraction: float | None = Field(
        default=None, ge=0, le=1, description="Share of rows that repeat an earlier row."
    )
    max_out_of_range_fraction: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Share of a numeric column outside its range (columns[].min/max, else the parent's).",
    )
    max_unseen_category_fraction: float | None = Field(
        default=None, ge=0, le=1, description="Share of a categorical column not seen by the parent."
    )
    max_label_share_change: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Largest allowed change of any class's share of the labels against the parent.",
    )
    schema_check: bool = Field(
        default=True,
        description="Fail when a column of the parent is missing or changed type (numeric vs categorical).",
    )
    columns: dict[str, ColumnLimits] = Field(
        default_factory=dict, description="Per-column limits, by column name.", max_length=200
    )


class Range(ApiModel):
    """A range to sample a parameter from (random and halving searches)."""

    low: float
    high: float
    log: bool = Field(default=False, description="Sample log-uniformly (low must be > 0).")
    type: Literal["int", "float"] = Field(default="float", description="int: whole numbers, bounds included.")

    @model_validator(mode="after")
    def _bounds(self) -> Range:
        if not self.low < self.high:
            raise ValueError(f"low {self.low:g} must be less than high {self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low:g}")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError("an int range needs whole-number low and high")
        return self


ANY_VALUE = {"x-kubernetes-preserve-unknown-fields": True, "x-modelops-any-value": True}
"""The CRD schema of a value that is a list or an object: kept as written, checked by the webhook
(a structural schema cannot say "array or object"; the pydantic model below can)."""


def _values_kind(value: Any) -> str | None:
    if isinstance(value, list):
        return "values"
    if isinstance(value, dict | Range):
        return "range"
    return None


SearchValues = Annotated[
    Annotated[Annotated[list[Any], Field(min_length=1, max_length=100)], Tag("values")]
    | Annotated[Range, Tag("range")],
    Discriminator(
        _values_kind,
        custom_error_type="search_values",
        custom_error_message="a list of values or a range {low, high, log, type}",
    ),
    WithJsonSchema(ANY_VALUE),
]

MAX_CANDIDATES = 1000
"""Candidates one search may evaluate: bounds the trial table and the Job's work."""


class Search(ApiModel):
    """Hyperparameter search before the final fit, fanned out as a Kubernetes Indexed Job.

    Each index of the Job evaluates its share of the candidates (scikit-learn's ParameterGrid or
    ParameterSampler, cross-validated with cross_validate on the training split); the final fit
    then trains on the best. Halving decides each round from the whole previous round, so it runs
    in one index (parallelism 1).
    """

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "self.method != 'halving' || self.parallelism == 1",
                    "search.parallelism must be 1 for halving: each round needs the whole previous one",
                ),
            ]
        }
    }

    method: Literal["grid", "random", "halving"] = Field(
        default="grid",
        description="grid: every combination (ParameterGrid); random: `trials` samples (ParameterSampler); "
        "halving: successive halving (HalvingGridSearchCV, or HalvingRandomSearchCV when a range is given).",
    )
    space: dict[str, SearchValues] = Field(
        min_length=1,
        max_length=20,
        description="Estimator parameter -> a list of values, or a range {low, high, log, type: int|float} "
        "(random and halving). Overrides training.estimator.params.",
    )
    cv: int = Field(default=5, ge=2, le=20, description="Cross-validation folds on the training split.")
    scoring: Scoring | None = Field(
        default=None,
        description="scikit-learn scorer name; default accuracy (classifiers) or r2 (regressors).",
    )
    trials: int = Field(
        default=10,
        ge=1,
        le=MAX_CANDIDATES,
        description="random (and halving with a range): candidates drawn.",
    )
    parallelism: int = Field(default=1, ge=1, le=32, description="Indexed Job completions and parallel pods.")
    seed: int = Field(default=0, ge=0, description="Seed of the sampler (random, halving).")

    @model_validator(mode="after")
    def _fits(self) -> Search:
        ranges = [k for k, v in self.space.items() if isinstance(v, Range)]
        if self.method == "grid" and ranges:
            raise ValueError(f"space.{ranges[0]}: a range needs method random or halving; grid takes a list")
        if self.method == "halving" and self.parallelism != 1:
            raise ValueError("parallelism must be 1 for halving: each round needs the whole previous one")
        if self.candidate_count() > MAX_CANDIDATES:
            raise ValueError(f"space makes {self.candidate_count()} candidates; at most {MAX_CANDIDATES}")
        return self

    def grid_size(self) -> int | None:
        """Combinations of the lists; None when a range makes the space continuous."""
        if any(isinstance(v, Range) for v in self.space.values()):
            return None
        return math.prod(len(v) for v in self.space.values() if isinstance(v, list))

    def candidate_count(self) -> int:
        """How many candidates are evaluated (first round of halving-random: `trials`)."""
        grid = self.grid_size()
        if self.method == "grid":
            return grid or 0
        if self.method == "halving":
            return grid if grid is not None else self.trials
        return self.trials if grid is None else min(self.trials, grid)

    def shards(self) -> int:
        """Indexed Job completions: one per pod asked for, never more than there are candidates."""
        return max(1, min(self.parallelism, self.candidate_count()))


class Training(ApiModel):
    """How to train: data, estimator, split and the Job's limits."""

    dataset: Dataset
    estimator: Estimator
    split: Split = Field(default_factory=Split)
    data_quality: DataQuality | None = Field(
        default=None, description="Check the data before fitting; the report goes to status.training."
    )
    search: Search | None = Field(
        default=None,
        description="Hyperparameter search as an Indexed Job before the final fit on the best parameters.",
    )
    reference_bins: int = Field(
        default=10, ge=2, le=50, description="Quantile bins recorded per numeric feature for drift."
    )
    resources: ResourceRequirements | None = None
    backoff_limit: int = Field(default=1, ge=0, le=10)
    active_deadline_seconds: int = Field(default=3600, ge=10)
    image: str | None = Field(default=None, description="Trainer image; default from operator settings.")


ARTIFACT_URI = (
    r"^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/.+|file:///.+|s3://[a-z0-9][-a-z0-9.]{1,61}[a-z0-9]/.+"
    r"|https://[^/]+/.+)$"
)


class ImportedArtifact(ApiModel):
    """A scikit-learn model trained elsewhere, saved with skops (e.g. by `modelops train` run outside
    the cluster). It must take rows as the trainer's models do: the reference data set's feature
    columns in order, numbers as float64, categorical columns as strings."""

    uri: str = Field(
        pattern=ARTIFACT_URI,
        description="The model file (skops): pvc://<claim>/<path>, s3://<bucket>/<key>, "
        "https://<host>/<path> or file:///<path>.",
    )
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="Digest of the file; the import refuses any other bytes."
    )
    reference_dataset: Dataset = Field(
        description="Labelled rows the model did not train on: the import scores the model on them "
        "(status.training.metrics, the validation gates) and takes drift reference bins from them."
    )
    s3: S3Connection | None = Field(
        default=None,
        description="How to reach an s3:// model file; default: spec.storage.s3's connection, else the "
        "pod's workload identity.",
    )
    reference_bins: int = Field(
        default=10, ge=2, le=50, description="Quantile bins recorded per numeric feature for drift."
    )
    resources: ResourceRequirements | None = None
    backoff_limit: int = Field(default=1, ge=0, le=10)
    active_deadline_seconds: int = Field(default=1800, ge=10)
    image: str | None = Field(
        default=None, description="Importer (trainer) image; default from operator settings."
    )


class Source(ApiModel):
    """Where a model trained elsewhere comes from, instead of `training`."""

    artifact: ImportedArtifact


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


FairnessMetric = Literal["accuracy", "selection_rate", "true_positive_rate", "false_positive_rate", "mae"]


class Fairness(ApiModel):
    """Per-group metrics on the held-out split (fairlearn's MetricFrame) and a gate on their spread."""

    sensitive_features: list[str] = Field(min_length=1, max_length=10)
    metric: FairnessMetric = Field(
        default="selection_rate",
        description="accuracy, selection_rate, true_positive_rate, false_positive_rate (binary "
        "classifiers) or mae (regressors).",
    )
    max_difference: float = Field(
        default=0.1, ge=0, description="Largest allowed difference of the metric between two groups."
    )
    used_for_training: bool = Field(
        default=True,
        description="False: the sensitive columns are kept out of the model's inputs and only group the "
        "evaluation.",
    )


class Validation(ApiModel):
    gates: list[Gate] = Field(default_factory=list, max_length=20)
    champion: ChampionComparison | None = None
    dataset: Dataset | None = Field(
        default=None,
        description="A fixed evaluation (golden) set: challenger and champion are both scored on it, "
        "besides the challenger's held-out split. Its target defaults to the training target; "
        "it must have the training features.",
    )
    on_incomparable: Literal["Reject", "GatesOnly"] = Field(
        default="Reject",
        description="When the champion cannot be scored on the same data (artifact gone, different "
        "features, champion changed during training): Reject the challenger, or decide on the gates only. "
        "Either way the Validated condition (reason ChampionIncomparable or GatesOnly) says why.",
    )
    fairness: Fairness | None = None


DURATION = r"^([0-9]+(ms|s|m|h))+$"
TrafficMode = Literal["replicas", "gatewayAPI"]


class CanaryStep(ApiModel):
    """One step of a canary: this share of live traffic, analysed for `pause` before the next."""

    weight: int = Field(ge=1, le=99, description="Percent of live traffic the canary receives in this step.")
    pause: str = Field(
        default="60s",
        pattern=DURATION,
        description="How long the step is analysed once its traffic split is in effect (e.g. 60s, 2m).",
    )


class Canary(ApiModel):
    """A canary beside the champion on a share of live traffic, judged on HTTP health and model
    quality against the champion over the same window; a breach at any step rolls back."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("!(has(self.steps) && has(self.weight))", "set either canary.weight or canary.steps"),
                cel(
                    "self.traffic != 'gatewayAPI' || has(self.httpRoute)",
                    "canary.httpRoute is required for traffic gatewayAPI",
                ),
            ]
        }
    }

    traffic: TrafficMode = Field(
        default="replicas",
        description="replicas: the stable Service selects champion and canary pods, sized to the step's "
        "weight as closely as replicas allow; gatewayAPI: the weights of httpRoute's backendRefs.",
    )
    http_route: str | None = Field(
        default=None,
        pattern=DNS_LABEL,
        description="gatewayAPI: the HTTPRoute (same namespace) whose backendRefs the operator sets.",
    )
    weight: int | None = Field(
        default=None, ge=1, le=99, description="Simple form: one step with this weight for analysisSeconds."
    )
    steps: list[CanaryStep] | None = Field(
        default=None, min_length=1, max_length=10, description="Steps in order; promotion after the last."
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=100,
        description="gatewayAPI: canary pods (replicas mode sizes them from the weight).",
    )
    analysis_seconds: int = Field(
        default=120, ge=10, description="The pause of the simple form (weight, or neither weight nor steps)."
    )
    max_error_rate: float = Field(default=0.01, ge=0, le=1, description="5xx share allowed.")
    max_p99_latency_seconds: float = Field(default=0.5, gt=0)
    min_requests: int = Field(default=20, ge=0, description="Fewer requests than this: the analysis waits.")
    max_accuracy_drop: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Classifiers: online accuracy (from /feedback labels) may be at most this far below "
        "the champion's over the same window. Unset: not judged.",
    )
    max_mae_increase: float | None = Field(
        default=None,
        ge=0,
        description="Regressors: online MAE may be at most this far above the champion's. Unset: not judged.",
    )
    min_labels: int = Field(
        default=50,
        ge=1,
        description="Labels each version needs in the window before accuracy or MAE is judged.",
    )
    max_prediction_divergence: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Jensen-Shannon distance (base 2, in [0, 1]) between the canary's and the champion's "
        "predicted classes (binned predictions for regressors). Unset: not judged.",
    )
    min_predictions: int = Field(
        default=200,
        ge=1,
        description="Predictions each version needs in the window before divergence is judged.",
    )

    def schedule(self) -> list[tuple[int, float]]:
        """(weight, pause seconds) of every step: the steps, else one step of `weight` (default 10)."""
        if self.steps:
            return [(s.weight, duration_seconds(s.pause)) for s in self.steps]
        return [(self.weight or DEFAULT_WEIGHT, float(self.analysis_seconds))]


DEFAULT_WEIGHT = 10
"""The weight of a canary that names neither weight nor steps."""


def duration_seconds(text: str) -> float:
    """A duration such as 90s, 2m or 1h30m, in seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"([0-9]+)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * units[u] for n, u in parts)


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


REQUESTS_METRIC = "modelops_server_requests_per_second"
"""The Pods metric a requests-per-second target reads: a metrics adapter (prometheus-adapter) serves it
as the rate of the server's `modelops_server_requests_total` (README: Autoscaled servers)."""


class Autoscaling(ApiModel):
    """A HorizontalPodAutoscaler (autoscaling/v2) per serving version, on exactly one target."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "has(self.targetCPUUtilization) != has(self.targetRequestsPerSecond)",
                    "serving.autoscaling needs exactly one of targetCPUUtilization, targetRequestsPerSecond",
                    fieldPath=".targetCPUUtilization",
                ),
                cel(
                    "self.minReplicas <= self.maxReplicas",
                    "serving.autoscaling.minReplicas must not exceed maxReplicas",
                    fieldPath=".minReplicas",
                ),
            ]
        }
    }

    min_replicas: int = Field(default=1, ge=1, le=100, description="Fewest server pods (at least 1).")
    max_replicas: int = Field(ge=1, le=100, description="Most server pods.")
    target_cpu_utilization: int | None = Field(
        default=None,
        alias="targetCPUUtilization",
        ge=1,
        le=1000,
        description="Average CPU use as a percent of the server's CPU request (needs metrics-server).",
    )
    target_requests_per_second: float | None = Field(
        default=None,
        gt=0,
        description=f"Average requests per second per pod, read from the Pods metric {REQUESTS_METRIC} "
        "(needs a metrics adapter such as prometheus-adapter).",
    )

    @model_validator(mode="after")
    def _one_target(self) -> Autoscaling:
        if (self.target_cpu_utilization is None) == (self.target_requests_per_second is None):
            raise ValueError(
                "serving.autoscaling needs exactly one of targetCPUUtilization, targetRequestsPerSecond"
            )
        if self.min_replicas > self.max_replicas:
            raise ValueError("serving.autoscaling.minReplicas must not exceed maxReplicas")
        return self


class Serving(ApiModel):
    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "!has(self.capture) || self.replicas <= 1",
                    "serving.capture needs replicas 0 or 1: each server rewrites the version's captured file",
                ),
                cel(
                    "!has(self.capture) || !has(self.autoscaling) || self.autoscaling.maxReplicas <= 1",
                    "serving.capture needs autoscaling.maxReplicas 1: each server rewrites the version's "
                    "captured file",
                    fieldPath=".autoscaling.maxReplicas",
                ),
            ]
        }
    }

    autoscaling: Autoscaling | None = Field(
        default=None,
        description="Scale the servers with a HorizontalPodAutoscaler between minReplicas and maxReplicas "
        "(replicas is then ignored; a canary's split is held through it).",
    )

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
        if self.capture is not None and self.autoscaling is not None and self.autoscaling.max_replicas > 1:
            raise ValueError(
                "serving.capture needs autoscaling.maxReplicas 1: each server rewrites the version's "
                "captured file"
            )
        return self

    def size(self) -> int:
        """The serving size a version deploys and promotes at: autoscaling's minimum, else replicas."""
        return self.autoscaling.min_replicas if self.autoscaling else self.replicas


class Promotion(ApiModel):
    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "!has(self.requireApproval) || !self.requireApproval || self.mode == 'Manual'",
                    "promotion.requireApproval needs mode: Manual",
                ),
            ]
        }
    }

    mode: Literal["Auto", "Manual"] = "Auto"
    require_approval: bool = Field(
        default=False,
        description="Manual mode: act on a promotion request only once the annotation "
        "modelops.dev/approved-by names who approved it.",
    )
    request: str | None = Field(
        default=None,
        max_length=63,
        description="Set or change this token (e.g. a date) to ask for this version to become champion; "
        "the annotation modelops.dev/promote does the same. Rollback is promoting an older version.",
    )


class Card(ApiModel):
    """What a person must know about the model; written into model-card.md and .json at training."""

    owner: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    intended_use: str | None = Field(default=None, max_length=2000)
    limitations: list[str] = Field(default_factory=list, max_length=20)


class S3Storage(S3Connection):
    """Artifacts under `s3://<bucket>/<prefix>/<model>/<version>/`."""

    bucket: str = Field(pattern=S3_BUCKET)
    prefix: str = Field(
        default="", pattern=S3_PREFIX, description="Key prefix, without slashes at either end."
    )


DEFAULT_CLAIM = "modelops-artifacts"


class Storage(ApiModel):
    """Where artifacts live: a PVC (the default, `modelops-artifacts`) or an S3 bucket prefix."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("!(has(self.pvc) && has(self.s3))", "storage takes either pvc or s3, not both"),
            ]
        }
    }

    pvc: str | None = Field(
        default=None, pattern=DNS_LABEL, description=f"Claim holding artifacts; default {DEFAULT_CLAIM}."
    )
    mount_path: str = Field(default="/artifacts", pattern=r"^/.+")
    s3: S3Storage | None = Field(default=None, description="Keep artifacts in an S3 bucket instead of a PVC.")

    @model_validator(mode="after")
    def _one_backend(self) -> Storage:
        if self.pvc and self.s3:
            raise ValueError("storage takes either pvc or s3, not both")
        return self

    @property
    def claim(self) -> str | None:
        """The artifact claim, or None when artifacts live in S3."""
        return None if self.s3 else (self.pvc or DEFAULT_CLAIM)

    @property
    def root(self) -> str:
        """The store's root URI: s3://bucket[/prefix] or the mount path inside the pod."""
        if self.s3:
            return f"s3://{self.s3.bucket}" + (f"/{self.s3.prefix}" if self.s3.prefix else "")
        return self.mount_path


ONE_ORIGIN = "spec takes exactly one of training (train here) and source.artifact (a model trained elsewhere)"
SEARCH_NEEDS_CLAIM = "training.search keeps its shard files on the storage claim: it needs spec.storage.pvc, not spec.storage.s3"
CAPTURE_NEEDS_CLAIM = (
    "serving.capture writes served rows to the storage claim: it needs spec.storage.pvc, not spec.storage.s3"
)


class ModelVersionSpec(ApiModel):
    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("self.model == oldSelf.model", "spec.model is immutable"),
                cel(
                    "has(self.training) == has(oldSelf.training) && "
                    "(!has(self.training) || self.training == oldSelf.training)",
                    "spec.training is immutable: a trained model never changes; create a new ModelVersion",
                ),
                cel(
                    "has(self.source) == has(oldSelf.source) && (!has(self.source) || self.source == oldSelf.source)",
                    "spec.source is immutable: an imported model never changes; create a new ModelVersion",
                ),
                cel("has(self.training) != has(self.source)", ONE_ORIGIN),
                cel(
                    "!has(self.serving) || !has(self.serving.capture) || !has(self.storage) || "
                    "!has(self.storage.s3)",
                    CAPTURE_NEEDS_CLAIM,
                ),
                cel(
                    "!has(self.training) || !has(self.training.search) || !has(self.storage) || "
                    "!has(self.storage.s3)",
                    SEARCH_NEEDS_CLAIM,
                ),
            ]
        }
    }

    model: str = Field(pattern=DNS_1035, max_length=40, description="Model family; versions share it.")
    parent: str | None = Field(default=None, description="The version this one was retrained from.")
    training: Training | None = Field(default=None, description="Train the model here (or spec.source).")
    source: Source | None = Field(
        default=None, description="Bring a model trained elsewhere: an import Job runs instead of training."
    )
    validation: Validation = Field(default_factory=Validation)
    serving: Serving = Field(default_factory=Serving)
    promotion: Promotion = Field(default_factory=Promotion)
    storage: Storage = Field(default_factory=Storage)
    card: Card = Field(
        default_factory=Card, description="Model card facts, captured when the version trains."
    )
    retired: bool = Field(default=False, description="Retire this version: its Deployment is removed.")

    @model_validator(mode="after")
    def _one_origin(self) -> ModelVersionSpec:
        if (self.training is None) == (self.source is None):
            raise ValueError(ONE_ORIGIN)
        return self

    @property
    def imported(self) -> ImportedArtifact | None:
        """The model brought in (spec.source.artifact), or None for a version trained here."""
        return self.source.artifact if self.source else None

    @property
    def data(self) -> Dataset:
        """The data set that describes the model's rows: the training set, or the import's reference set."""
        if self.training is not None:
            return self.training.dataset
        return self.source.artifact.reference_dataset  # type: ignore[union-attr]

    @property
    def job_image(self) -> str | None:
        """The image the version's own Jobs (training or import, clean-up) run, when the spec names one."""
        return self.training.image if self.training else self.source.artifact.image  # type: ignore[union-attr]

    @model_validator(mode="after")
    def _capture_on_a_claim(self) -> ModelVersionSpec:
        if self.serving.capture is not None and self.storage.s3 is not None:
            raise ValueError(CAPTURE_NEEDS_CLAIM)
        if self.training is not None and self.training.search is not None and self.storage.s3 is not None:
            raise ValueError(SEARCH_NEEDS_CLAIM)
        return self


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


class Evaluation(StatusModel):
    """Both models scored on one evaluation set."""

    set: str = Field(description="heldOut (the challenger's test split) or golden (validation.dataset).")
    uri: str | None = Field(default=None, description="The data set the rows came from.")
    rows: int = Field(default=0, description="Rows scored.")
    challenger: dict[str, float] = Field(default_factory=dict, description="This version's metrics.")
    champion: dict[str, float] = Field(default_factory=dict, description="The champion's metrics.")


class Comparison(StatusModel):
    """Champion and challenger on the same data, as the trainer measured them."""

    champion: str = Field(description="The champion version scored.")
    champion_sha256: str | None = Field(default=None, description="Digest of the champion artifact loaded.")
    evaluations: list[Evaluation] = Field(default_factory=list, description="One entry per evaluation set.")
    error: str | None = Field(default=None, description="Why the champion could not be scored.")


class QualityCheck(StatusModel):
    """One data check's verdict."""

    check: str = Field(description="minRows, schema, missingValues, duplicateRows, outOfRange, ...")
    column: str | None = Field(default=None, description="The column checked, when the check is per column.")
    value: float | None = Field(default=None, description="What was measured (a share or a count).")
    limit: float | None = Field(default=None, description="The limit it was held to.")
    passed: bool = Field(description="Whether the value is within the limit.")
    message: str = Field(default="", description="The verdict in words, naming the column and the limit.")


class ColumnStats(StatusModel):
    dtype: str = Field(description="number or category.")
    missing: int = Field(default=0, description="Missing values.")
    distinct: int | None = Field(default=None, description="Distinct values.")
    min: float | None = Field(default=None, description="Smallest value (numeric).")
    max: float | None = Field(default=None, description="Largest value (numeric).")
    mean: float | None = Field(default=None, description="Mean (numeric).")


class DataQualityReport(StatusModel):
    """The data check's report (bounded here; the whole report is data-quality.json beside the model)."""

    passed: bool = Field(description="True when every check passed.")
    rows: int = Field(default=0, description="Rows read, before any were dropped.")
    dropped_rows: int = Field(default=0, description="Rows dropped for missing values within the limit.")
    parent: str | None = Field(default=None, description="The version the data was compared with.")
    checks: list[QualityCheck] = Field(default_factory=list, description="Failed checks first.")
    columns: dict[str, ColumnStats] = Field(default_factory=dict, description="Per-column statistics.")
    truncated: bool = Field(default=False, description="True when checks or columns were cut to fit.")


class FeatureImportance(StatusModel):
    feature: str = Field(description="An input feature.")
    importance: float = Field(description="Mean drop of the score when the feature is shuffled.")
    std: float = Field(default=0.0, description="Standard deviation over the repeats.")


class Explanations(StatusModel):
    method: str = Field(default="permutation", description="How importance was measured.")
    scoring: str = Field(default="", description="The score whose drop is measured.")
    top: list[FeatureImportance] = Field(default_factory=list, description="Most important first.")


class FairnessGroup(StatusModel):
    feature: str = Field(description="The sensitive feature.")
    group: str = Field(description="One value of it.")
    value: float | None = Field(default=None, description="The metric on this group's held-out rows.")
    count: int = Field(default=0, description="Held-out rows in the group.")


class FairnessReport(StatusModel):
    metric: str = Field(description="The metric compared between groups.")
    groups: list[FairnessGroup] = Field(default_factory=list, description="The metric per group.")
    differences: dict[str, float] = Field(
        default_factory=dict, description="Per sensitive feature, the largest difference between groups."
    )
    used_for_training: bool = Field(
        default=True, description="Whether the sensitive features were model inputs."
    )


class Trial(StatusModel):
    """One candidate's cross-validated score."""

    candidate: int = Field(description="Its index in the candidate list (ParameterGrid/Sampler order).")
    params: dict[str, Any] = Field(default_factory=dict, description="The searched parameters.")
    mean_score: float | None = Field(default=None, description="Mean score over the folds (None: failed).")
    std_score: float | None = Field(default=None, description="Standard deviation over the folds.")
    rank: int | None = Field(default=None, description="1 is the best.")
    shard: int | None = Field(default=None, description="The Indexed Job completion index that ran it.")


class SearchResult(StatusModel):
    """The search's outcome (bounded: the full trial table is search.json beside the model)."""

    method: str = Field(description="grid, random or halving.")
    scoring: str = Field(description="The scorer compared.")
    cv: int = Field(description="Folds.")
    candidates: int = Field(description="Candidates evaluated.")
    shards: int = Field(description="Indexed Job completions that evaluated them.")
    best_params: dict[str, Any] = Field(default_factory=dict, description="What the final fit used.")
    best_score: float | None = Field(default=None, description="Mean CV score of the best candidate.")
    best_std: float | None = Field(default=None, description="Its standard deviation over the folds.")
    summary: str | None = Field(default=None, description="best score ± std (candidates), for kubectl.")
    top: list[Trial] = Field(default_factory=list, description="The best trials, best first.")
    failed: int = Field(default=0, description="Candidates whose fit or scoring failed.")
    table: str | None = Field(default=None, description="Where the full trial table is (search.json).")


class TrainingResult(StatusModel):
    """What the trainer reported, bound to one Job run by its uid."""

    job_uid: str | None = Field(
        default=None, description="The training Job run this result belongs to; others are ignored."
    )
    succeeded: bool = Field(default=True, description="False when the trainer failed (see message).")
    message: str | None = Field(default=None, description="Why training failed.")
    reason: str | None = Field(
        default=None, description="Why training failed, as one CamelCase word (e.g. DataQualityFailed)."
    )
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
    comparison: Comparison | None = Field(
        default=None, description="The champion scored on the same data, when there was one to compare with."
    )
    data_quality: DataQualityReport | None = Field(default=None, description="The data checks' report.")
    explanations: Explanations | None = Field(
        default=None, description="Permutation importance on the held-out split."
    )
    fairness: FairnessReport | None = Field(
        default=None, description="Per-group metrics on the held-out split."
    )
    search: SearchResult | None = Field(
        default=None, description="The hyperparameter search the final fit's parameters came from."
    )
    card: str | None = Field(default=None, description="Where the model card is (next to the artifact).")
    finished_at: str | None = Field(default=None, description="When the trainer reported.")


class ServingStatus(StatusModel):
    deployment: str | None = Field(default=None, description="The server Deployment of this version.")
    service: str | None = Field(default=None, description="This version's own Service.")
    endpoint: str | None = Field(default=None, description="In-cluster URL of this version's Service.")
    replicas: int = Field(default=0, description="Server replicas the operator asked for.")
    ready_replicas: int = Field(default=0, description="Server replicas ready.")
    card: str | None = Field(default=None, description="URL of the model card served by this version.")


class HistoryEntry(StatusModel):
    """One decision about this version, as its Event said it."""

    time: str = Field(description="When it was decided.")
    decision: str = Field(description="Promoted, RolledBack, Rejected, Failed or Retired.")
    reason: str = Field(description="The Event reason (one CamelCase word).")
    message: str = Field(default="", description="The Event message.")
    by: str | None = Field(
        default=None,
        description="Who asked: the request token and the field manager that wrote it, or operator.",
    )
    approved_by: str | None = Field(default=None, description="The modelops.dev/approved-by annotation.")


class Verdict(StatusModel):
    """What the champion comparison decided, and on which evidence."""

    verdict: Literal["ChallengerBetter", "ChampionBetter", "Incomparable"] = Field(
        description="ChallengerBetter, ChampionBetter or Incomparable."
    )
    champion: str | None = Field(default=None, description="The champion compared with.")
    champion_sha256: str | None = Field(default=None, description="Digest of the champion artifact scored.")
    metric: str | None = Field(default=None, description="The metric compared.")
    message: str = Field(default="", description="The numbers per evaluation set, or why none.")


class CanaryStatus(StatusModel):
    """Where a canary is: its step, the traffic it gets, and what the analysis last saw."""

    step: int = Field(default=1, description="The current step, from 1.")
    steps: int = Field(default=1, description="How many steps there are.")
    progress: str | None = Field(default=None, description="step/steps, as `kubectl get mv` shows it.")
    weight: int = Field(
        default=0, description="Percent of live traffic the canary should get now (0 after a rollback)."
    )
    effective_weight: float | None = Field(
        default=None,
        description="Percent it does get: canary share of ready endpoints (replicas) or the route's weight.",
    )
    traffic: TrafficMode = Field(default="replicas", description="How traffic is split.")
    champion: str | None = Field(default=None, description="The champion the canary is compared with.")
    canary_replicas: int | None = Field(default=None, description="replicas mode: canary pods for this step.")
    stable_replicas: int | None = Field(
        default=None, description="replicas mode: champion pods for this step (the champion scales to it)."
    )
    step_entered: str | None = Field(
        default=None, description="When this step began (its split was asked for)."
    )
    step_started: str | None = Field(
        default=None,
        description="When this step's traffic split was first seen in effect; its pause runs from here.",
    )
    analysis: str | None = Field(default=None, description="The last analysis, in one line.")


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
    comparison: Verdict | None = Field(
        default=None, description="The champion comparison's verdict on the same-data numbers."
    )
    handled_promotion: str | None = Field(
        default=None, description="The promotion request (annotation or spec) last acted on."
    )
    canary: CanaryStatus | None = Field(
        default=None, description="The canary's step and traffic, while one runs."
    )
    superseded_by: str | None = Field(
        default=None,
        description="While Superseded: the champion that took over from this version, as it was then.",
    )
    message: str | None = Field(default=None, description="What is happening now, in one line.")
    history: list[HistoryEntry] = Field(
        default_factory=list,
        description="The audit trail: promotions, rollbacks, rejections, failures, retirement; newest "
        "last, bounded.",
    )


class ModelVersion(ApiModel):
    """The whole object as the operator reads it."""

    model_config = {"extra": "ignore"}

    api_version: str = "modelops.dev/v1alpha1"
    kind: str = "ModelVersion"
    metadata: FreeForm = Field(default_factory=dict)
    spec: ModelVersionSpec
    status: ModelVersionStatus = Field(default_factory=ModelVersionStatus)
