"""The community's formats by their old address: ``from bsr.community import ...``.

Everything here lives in :mod:`bsr.formats` now, one module per job: the key table
(:mod:`~bsr.formats.keys`), BS-RoFormer or Mel-Band (:mod:`~bsr.formats.kinds`), the
translation of community settings (:mod:`~bsr.formats.settings`), lucidrains' keyword
arguments (:mod:`~bsr.formats.lucidrains`) and ZFTurbo's YAML
(:mod:`~bsr.formats.zfturbo`). This module only gathers their public names, so that code
written against ``bsr.community`` keeps working; new code imports from ``bsr.formats``.
"""

from bsr.formats.keys import (
    KEY_TABLE,
    block_positions,
    bsr_key,
    community_key,
    from_community_state_dict,
    rotary_frequencies,
    to_community_state_dict,
)
from bsr.formats.kinds import (
    BS,
    KIND_ONLY,
    MEL,
    MODEL_TYPES,
    model_type_of,
    require_community_layout,
    weights_model_type,
)
from bsr.formats.lucidrains import community_kwargs, config_from_lucidrains
from bsr.formats.settings import (
    COMMON_DEFAULTS,
    LUCIDRAINS_DEFAULTS,
    NO_EFFECT,
    REQUIRED,
    SPEED_ONLY,
    UNSUPPORTED,
    ZFTURBO_DEFAULTS,
    ZFTURBO_NAMES,
    network_settings,
)
from bsr.formats.source import read_yaml, strip_module_prefix
from bsr.formats.zfturbo import (
    CommunityConfig,
    config_from_zfturbo,
    is_zfturbo_config,
    load_zfturbo,
    separation_defaults,
    zfturbo_config,
)

__all__ = [
    "BS",
    "COMMON_DEFAULTS",
    "KEY_TABLE",
    "KIND_ONLY",
    "LUCIDRAINS_DEFAULTS",
    "MEL",
    "MODEL_TYPES",
    "NO_EFFECT",
    "REQUIRED",
    "SPEED_ONLY",
    "UNSUPPORTED",
    "ZFTURBO_DEFAULTS",
    "ZFTURBO_NAMES",
    "CommunityConfig",
    "block_positions",
    "bsr_key",
    "community_key",
    "community_kwargs",
    "config_from_lucidrains",
    "config_from_zfturbo",
    "from_community_state_dict",
    "is_zfturbo_config",
    "load_zfturbo",
    "model_type_of",
    "network_settings",
    "read_yaml",
    "require_community_layout",
    "rotary_frequencies",
    "separation_defaults",
    "strip_module_prefix",
    "to_community_state_dict",
    "weights_model_type",
    "zfturbo_config",
]
