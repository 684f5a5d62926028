"""The serving Deployment's program: Open Inference Protocol v2, /predict, /feedback, /metrics."""
