"""Inference: sliding-window prediction with Gaussian blending, mirroring TTA, the segment predictor."""
