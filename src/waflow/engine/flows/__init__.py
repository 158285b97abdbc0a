"""Flow definitions: the static half of the engine (models, loading, validation, expressions, drawing)."""
