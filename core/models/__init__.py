"""Models: loading by hub id or folder, the built-in tiny LLaVA, naming a model's parts, and encoding samples."""
