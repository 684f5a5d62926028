"""Shared pieces of the API: the pydantic base, conditions, and schema hints for CRD generation.

The pydantic models are the single source of truth for the CRDs; schema hints that
Kubernetes needs and JSON Schema lacks (CEL rules, preserve-unknown-fields, list
types) travel in `json_schema_extra` and are kept by the generator in `crdgen.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
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
    int | str,
    Field(json_schema_extra={"x-kubernetes-int-or-string": True}),
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
