"""Storage: repository interfaces (`base`) and one package per backend."""
