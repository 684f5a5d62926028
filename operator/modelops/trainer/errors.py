"""The two ways a training run can fail on purpose, each with its exit code."""

from __future__ import annotations


class BadInput(Exception):
    """The spec or the data cannot produce a model; retrying will not help (exit code 2)."""

    exit_code = 2


class ReportError(Exception):
    """The result could not be written to the ModelVersion (exit code 4)."""

    exit_code = 4
