"""PyTorch side of mtl-planner: task data, multitask models, the batched trainer, losses.

Never imports ``planner``.
"""
