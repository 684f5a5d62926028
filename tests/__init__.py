"""ModelOps test suite: unit (pure), integration and e2e (against a real API server)."""
