"""ModelOps: a Kubernetes operator for the whole life of machine-learning models."""

__version__ = "0.1.0"
GROUP = "modelops.dev"
VERSION = "v1alpha1"
