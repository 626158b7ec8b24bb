"""The miniature lab: tiny CLIP and tiny diffusion model trained from scratch on drawn scenes.

``diva lab build`` (``trainer.lab.pipeline.build_lab``) makes the built-in models in
``trainer/lab/builtin/`` and measures, on CPU, whether diffusion feedback helps; see docs/lab.md.
Submodules import torch, so nothing is imported here.
"""
