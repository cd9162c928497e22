"""Models: the built-in tiny LLaVA, loading by hub id or folder, and naming the parts of a model."""
