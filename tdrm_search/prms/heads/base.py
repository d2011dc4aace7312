"""What every PRM head implements: how a step is marked in the input, which model it loads, how its value is read
on transformers, on vLLM and in training. A head is bound to its `PRMConfig` and tokenizer; what is needed before a
tokenizer exists (config checks, vLLM engine arguments, attaching read-out parameters) is a class method.

Modules here import torch, transformers and vLLM inside the methods that use them: `PRMConfig` (and so the CLI)
loads the registry without them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from tdrm_search.devices import model_device
from tdrm_search.prms.encoding import EncodedPath, right_pad
from tdrm_search.prms.heads.steps import encode_steps

if TYPE_CHECKING:
    import torch

    from tdrm_search.prms.config import PRMConfig


@dataclass
class Head:
    """A PRM head. The defaults are a step-tag head's: one sequence per path, each step followed by `step_tag`, a
    causal LM read at the tags by a layer on the hidden states (`logits`), so stored or packed prefixes serve every
    extension. A new head is one module here that overrides what differs, plus its line in the registry."""

    name: ClassVar[str]
    reads_tag: ClassVar[bool] = True  # the config's step_tag (and token) fields apply
    reuses_prefixes: ClassVar[bool] = True  # a value is a layer on the hidden state at its read position
    trainable: ClassVar[bool] = True  # prm_train trains it
    learns_readout: ClassVar[bool] = False  # has read-out parameters beside the model, fitted before it trains
    one_request_per_step: ClassVar[bool] = False  # vLLM reads each step with its own request ending there
    reads_words: ClassVar[bool] = False  # good_token and bad_token apply though the tag does not
    writes_critique: ClassVar[bool] = False  # a read first generates text (`HFPRM.critique`, `read_vllm`)
    remote_read: ClassVar[str | None] = None  # how RemotePRM reads it over HTTP (`prms/remote.py`); None: it cannot

    config: PRMConfig
    tokenizer: Any

    # the config and the input

    @classmethod
    def check_config(cls, config: PRMConfig) -> None:
        """A clear error for a config field this head needs and lacks."""
        if cls.reads_tag and not config.step_tag:
            raise ValueError("PRM config: step_tag must not be empty")

    def check_format(self, where: str) -> None:
        """A clear error, naming `where`, when the tokenizer cannot render the PRM's format."""
        if self.config.prompt_template == "chat" and not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"{where}: the PRM config asks for the chat template (prompt_template 'chat') but the "
                "tokenizer has none; add one to the tokenizer or set a prompt_template with '{question}'"
            )

    def encode(
        self, question: str, steps: Sequence[str], start: int = 0, max_len: int | None = None
    ) -> list[EncodedPath]:
        """The sequences any backend runs to read the values of steps[start:], in step order."""
        path = encode_steps(self.tokenizer, self.config, question, steps, max_len)
        return [EncodedPath(path.ids, path.ends[start:], prompt=path.prompt)]

    def prompt_ids(self, question: str) -> list[int]:
        """The ids every sequence of the question starts with, before its first step (`cost.py`)."""
        return encode_steps(self.tokenizer, self.config, question, ()).ids

    def tokens_after(self) -> int:
        """The most tokens a read adds past its encoded sequence (the generative head: critique and verdict prompt)."""
        return 0

    # transformers

    def load(self, folder: str | Path, dtype: torch.dtype):
        """The model of a PRM folder, for inference."""
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)

    def logits(self, model, hidden: torch.Tensor) -> torch.Tensor:
        """The logit whose sigmoid is the value, from hidden states at read positions (differentiable)."""
        raise NotImplementedError(f"the {self.name!r} head reads whole paths (`path_logits`)")

    def path_logits(self, model, paths: Sequence[EncodedPath], pad: int) -> list[torch.Tensor]:
        """The logits at each path's read positions, whole sequences run as one right-padded batch."""
        ids, mask = right_pad([p.ids for p in paths], pad, model_device(model))
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        return [self.logits(model, hidden[i, p.ends]) for i, p in enumerate(paths)]

    # training (prm_train)

    def init_model(self, base: str | Path, dtype: torch.dtype | None = None):
        """The model to train from the causal LM at `base`, in `dtype` (default float32; read-out parameters
        attached beside it stay float32)."""
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype or torch.float32)
        return self.attach(model, self.config)

    @classmethod
    def attach(cls, model, config: PRMConfig):
        """`model` with the read-out parameters this head trains beside it (none by default)."""
        return model

    def check_model(self, model) -> None:
        """A clear error when `model` cannot be trained with this head."""

    # vLLM

    @classmethod
    def engine_args(cls, folder: str | Path) -> dict:
        """The vLLM engine arguments this head needs (a clear error when the folder cannot serve it)."""
        return {}

    def vllm_requests(self, path: EncodedPath) -> list[EncodedPath]:
        """The prompts vLLM runs to read a path's values: the path, or one prompt per step ending at its read."""
        if self.one_request_per_step:
            return [EncodedPath(path.ids[: end + 1], [end]) for end in path.ends]
        return [path] if path.ends else []

    def read_vllm(self, llm, prompts: list[EncodedPath], read_cache: bool = True) -> list[tuple[list[float], Any]]:
        """Each prompt's values at its read positions and its vLLM output, in one engine call; `read_cache=False`
        reads nothing from the prefix cache."""
        raise NotImplementedError

    def spent(self, out) -> Spent:
        """What a read took, from the output `read_vllm` gave with its values."""
        return Spent(len(out.prompt_token_ids), out.num_cached_tokens or 0)


@dataclass(frozen=True)
class Spent:
    """A read's tokens: prompt tokens the engine took in, how many of them came from a cache, and tokens it wrote."""

    prompt: int
    cached: int
    generated: int = 0


def classifier(model):
    """The layer a classification model reads hidden states with."""
    return model.score if hasattr(model, "score") else model.classifier


def skip_cache(read_cache: bool) -> bool | None:
    """vLLM's `skip_reading_prefix_cache`: True to read nothing from the cache, else the engine's default."""
    return None if read_cache else True
