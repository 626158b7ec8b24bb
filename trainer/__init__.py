"""The science: backbones, diffusion feedback, recipes, training loop, evaluation, export, lab.

A pure library: importable on CPU, imports neither FastAPI nor Celery nor a database driver.
"""
