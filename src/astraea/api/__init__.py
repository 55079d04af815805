"""HTTP APIs: one module per API set, sharing auth, errors and body parsing."""
