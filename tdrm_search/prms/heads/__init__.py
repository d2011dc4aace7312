"""PRM heads, one module each, registered by the name a `PRMConfig` (tdrm_prm.json) gives as its `head`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tdrm_search.prms.heads.base import Head
from tdrm_search.prms.heads.generative import GenerativeHead
from tdrm_search.prms.heads.likelihood import LikelihoodHead
from tdrm_search.prms.heads.lm import LMHead
from tdrm_search.prms.heads.tag_value import TagValueHead
from tdrm_search.prms.heads.token_classify import TokenClassifyHead
from tdrm_search.prms.heads.turns import TurnsHead
from tdrm_search.prms.heads.value import ValueHead

if TYPE_CHECKING:
    from tdrm_search.prms.config import PRMConfig

HEAD_TYPES: dict[str, type[Head]] = {
    h.name: h for h in (LMHead, TokenClassifyHead, ValueHead, LikelihoodHead, TagValueHead, TurnsHead, GenerativeHead)
}


def head_for(config: PRMConfig, tokenizer: Any) -> Head:
    """The config's head, bound to its tokenizer."""
    return HEAD_TYPES[config.head](config, tokenizer)
