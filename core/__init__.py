"""The studio's engine, no Gradio: config, datasets, memory, methods, models, runs and store, plus chat and export."""
