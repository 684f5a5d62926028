"""The local test cluster: real control-plane binaries on loopback, kwok for nodes and pods.

Run ``python -m tests.cluster --help`` for the command line; tests get it through the ``cluster``
fixture in ``tests/conftest.py``.
"""
