"""Datasets: MUSDB18(HQ) access, real example songs, and the training sampler."""
