"""starter-vlm: a real small LLaVA (DINOv2-small + SmolLM2-135M) assembled offline from PyPI wheels."""
