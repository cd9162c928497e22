"""Core engine of the studio: configs, registry, launcher, datasets, models and chat (no Gradio here)."""
