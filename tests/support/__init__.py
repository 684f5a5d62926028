"""Test support: the kubelet stand-in, Prometheus and the operator process."""
