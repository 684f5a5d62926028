"""Kopf wiring: one module per kind, plus start-up settings; thin around lifecycle/ and k8s/."""
