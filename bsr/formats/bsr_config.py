"""Community weights described by a bsr config (a ModelConfig, a bsr YAML or a preset).

The weights are in the community layout (a model exported with ``export_community``, or
a community checkpoint whose network someone wrote down as a bsr config), the network in
bsr's own terms. The config must describe the model type the weights hold: BS-RoFormer
with ``mask_norm: final``, Mel-Band RoFormer with ``bands: mel`` (see
:mod:`bsr.formats.kinds`). The weights are renamed as any community file's are.
"""

from __future__ import annotations

from bsr.formats.configs import bsr_model_config
from bsr.formats.keys import renamed
from bsr.formats.kinds import weights_model_type
from bsr.formats.source import Found, Source

NAME = "community state dict + bsr config"


def recognises(source: Source) -> bool:
    """Community weights with any other config (ZFTurbo's and lucidrains' come first)."""
    return source.config is not None


def read(source: Source) -> Found:
    config = bsr_model_config(source.config, weights_model_type(source.state_dict))
    return renamed(source.state_dict, config)
