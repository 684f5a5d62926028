"""Shared pieces of the API: the pydantic base, conditions, and schema hints for CRD generation.

The pydantic models are the single source of truth for the CRDs; schema hints that
Kubernetes needs and JSON Schema lacks (CEL rules, preserve-unknown-fields, list
types) travel in `json_schema_extra` and are kept by the generator in `crdgen.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""A Service name: a DNS label that starts with a letter (a model's stable Service is named after it)."""
QUANTITY = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
"""A resource.Quantity as Kubernetes parses it (the pattern controller-gen emits for quantities)."""
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(t: datetime) -> str:
    """A status timestamp: RFC 3339 in UTC with second precision, as Kubernetes writes its own."""
    return t.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp from status or metadata, as an aware datetime; naive means UTC."""
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def try_parse_time(value: str | None) -> datetime | None:
    """`parse_time`, or None for a missing or malformed value (status written by hand)."""
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


class ApiModel(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, Any]:
        """The object as it is written to the API server (camelCase, no unset optionals)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class StatusModel(ApiModel):
    """Status models tolerate fields written by newer operators (they are read back, not validated)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


def cel(rule: str, message: str, **extra: Any) -> dict[str, Any]:
    """A CEL `x-kubernetes-validations` entry."""
    return {"rule": rule, "message": message, **extra}


FreeForm = Annotated[
    dict[str, Any],
    Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}),
]
"""An object whose keys Kubernetes must keep as written (estimator params, overrides)."""

Quantity = Annotated[
    int | Annotated[str, StringConstraints(pattern=QUANTITY)],
    Field(json_schema_extra={"x-kubernetes-int-or-string": True}),
]
"""A resource quantity (`500m`, `1Gi`, `2`): anything else is refused at admission, naming the field."""


def name_rules(label: str, *, service: bool, limit: int = 63) -> list[dict[str, Any]]:
    """Root-level CEL rules on metadata.name: the operator uses it as a label value (at most 63
    characters) and in Service names (DNS-1035), so a name the API server would refuse on a child
    is refused on the object itself, at `kubectl apply`."""
    rules = [
        cel(
            f"self.metadata.name.size() <= {limit}",
            f"metadata.name must be at most {limit} characters: it is the value of the {label} label of "
            "everything the operator creates for it",
        )
    ]
    if not service:
        return rules
    return [
        *rules,
        cel(
            f"self.metadata.name.matches('{DNS_1035}')",
            "metadata.name must start with a letter and hold only lower case letters, digits and '-' "
            "(it names Kubernetes Services)",
        ),
    ]


class ResourceRequirements(ApiModel):
    """Container resources, as in a Pod spec."""

    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """A Kubernetes-style condition (metav1.Condition)."""

    type: str = Field(
        description="Trained, Validated, Deployed, Promoted, Ready, Reconciling, Stalled, Evaluated."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="One CamelCase word a program can match on.")
    message: str = Field(default="", description="What a person needs to know, in one line.")
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this condition was computed for."
    )
    last_transition_time: str | None = Field(
        default=None, description="When status last changed (not when the message did)."
    )
