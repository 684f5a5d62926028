"""The training Job's program: data, allow-listed estimators, evaluation, reference bins, artifact."""
