"""The Gradio front end: turns form values into core calls and formats what comes back."""
