"""bsr: learn music source separation by building BS-RoFormer step by step.

The library mirrors the course, one concept per module:

===================  =====================================================
``bsr.stft``         waveform <-> complex spectrogram <-> real features
``bsr.bands``        the band layouts (paper, custom, mel)
``bsr.band_split``   per-band RMSNorm + Linear to width D
``bsr.rope``         rotary position embeddings, from scratch
``bsr.attention``    multi-head attention with RoPE (fused and explicit)
``bsr.roformer``     the RoFormer block: time transformer, band transformer
``bsr.mask_estimator`` per-band MLP + GLU -> complex masks
``bsr.model``        BSRoformer, assembled
``bsr.loss``         waveform L1 + multi-resolution STFT L1
``bsr.config``       typed configs and the shipped presets
``bsr.hub``          ``load_model("course")``: a separator from a name or a file
``bsr.formats``      reading model files: the format table, one reader per format
===================  =====================================================
"""

from bsr._version import __version__
from bsr.config import Config, ModelConfig, TrainConfig, list_presets, load_config
from bsr.errors import BsrError
from bsr.hub import load_model, separate_audio
from bsr.model import BSRoformer, count_parameters

__all__ = [
    "BSRoformer",
    "BsrError",
    "Config",
    "ModelConfig",
    "TrainConfig",
    "__version__",
    "count_parameters",
    "list_presets",
    "load_config",
    "load_model",
    "separate_audio",
]
