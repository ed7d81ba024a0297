"""A Gradio app that puts pre-trained Hugging Face models and this project's trained models in
front of a person, one tab a task. Start it with `python -m gradio_app` (see docs/app.md).

Importing this package imports nothing heavy: `__main__` must set the hub and analytics
environment variables before Gradio, transformers or diffusers are imported.
"""
