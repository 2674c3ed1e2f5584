"""Datasets: MUSDB18(HQ) access, generated practice songs, real examples, the training sampler.

Nothing here imports the model: data flows into it, never the other way.
"""
