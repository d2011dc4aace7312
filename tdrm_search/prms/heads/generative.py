"""The generative head (ThinkPRM, GenPRM): a verifier LM is asked, in one user turn of its chat template, whether
the solution so far is right; it writes a verification of at most `critique_tokens` tokens (greedy; 0: none), then
`verdict_prompt` follows and the step's value is P(good) / (P(good) + P(bad)) of the verdict word after it, as the
LM head reads its tag. One sequence per new step (`encode`: the prompt up to where the critique starts); the
backends write the critique through their prefix-cached paths (`HFPRM.critique` over the key/value store, vLLM's
`generate` here) and read the verdict of `verdict(prompt, critique)`, whose prompt and critique the cache holds."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from tdrm_search.prms.encoding import SENTINEL, EncodedPath, chat, common_length
from tdrm_search.prms.heads.base import Spent, skip_cache
from tdrm_search.prms.heads.lm import LMHead

if TYPE_CHECKING:
    from tdrm_search.prms.config import PRMConfig

log = logging.getLogger(__name__)


@dataclass
class GenerativeHead(LMHead):
    name: ClassVar[str] = "generative"
    reads_tag: ClassVar[bool] = False
    reads_words: ClassVar[bool] = True
    writes_critique: ClassVar[bool] = True
    trainable: ClassVar[bool] = False  # a verifier that writes before its verdict; prm_train reads no critique
    remote_read: ClassVar[str | None] = None

    verdict_ids: list[int] = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.verdict_ids = self.tokenizer.encode(self.config.verdict_prompt, add_special_tokens=False)

    @classmethod
    def check_config(cls, config: PRMConfig) -> None:
        if not (config.good_token and config.bad_token):
            raise ValueError(
                "PRM config: a 'generative' head needs its verdict words as good_token and bad_token (e.g. 'Yes', 'No')"
            )
        if not all(name in config.prompt_template for name in ("{question}", "{solution}")):
            raise ValueError(
                "PRM config: a 'generative' head's prompt_template is its user turn and must contain '{question}' "
                f"and '{{solution}}'; got {config.prompt_template!r}"
            )
        if "{step}" not in config.step_template:
            raise ValueError(f"PRM config: step_template must contain '{{step}}'; got {config.step_template!r}")
        if not isinstance(config.critique_tokens, int) or config.critique_tokens < 0:
            raise ValueError(f"PRM config: critique_tokens must be an integer >= 0, got {config.critique_tokens!r}")
        if config.critique_tokens and not config.verdict_prompt:
            raise ValueError(
                "PRM config: a 'generative' head that writes a critique (critique_tokens > 0) needs a verdict_prompt "
                "to ask for its verdict after it (e.g. '\\nIs the solution correct?')"
            )

    def check_format(self, where: str) -> None:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"{where}: a 'generative' PRM asks its question with the chat template; the tokenizer has none"
            )

    def check_model(self, model) -> None:
        """Nothing to check: good and bad are checked when bound, and it is not trained."""

    def prompt(self, question: str, steps: Sequence[str]) -> EncodedPath:
        """The verifier's prompt for `steps`, read at its last token: the user turn rendered with the generation
        prompt, then the start of the critique. Its extensions' prompts share it up to the end of these steps
        (`shared`): the key/value store keeps that part for them."""
        cfg = self.config
        solution = cfg.step_join.join(
            cfg.step_template.replace("{index}", str(k)).replace("{step}", step.strip())
            for k, step in enumerate(steps, start=1)
        )
        user = cfg.prompt_template.format(question=question, solution=solution + SENTINEL)
        parts = chat(self.tokenizer, cfg, user).split(SENTINEL)
        if len(parts) != 2:
            raise ValueError("a 'generative' PRM needs a chat template that writes the user turn's text exactly once")
        before, after = parts
        critique = cfg.critique_prompt.replace("{index}", str(len(steps)))
        ids = self.tokenizer.encode(before + after + critique, add_special_tokens=False)
        shared = common_length([ids, self.tokenizer.encode(before, add_special_tokens=False)])
        return EncodedPath(ids, [len(ids) - 1], shared)

    def encode(
        self, question: str, steps: Sequence[str], start: int = 0, max_len: int | None = None
    ) -> list[EncodedPath]:
        """One prompt per step of steps[start:], read where the critique starts; a prompt with no room for its
        critique and verdict in `max_len`, and all after it, are left out (their steps get value 0)."""
        out = []
        for k in range(start + 1, len(steps) + 1):
            path = self.prompt(question, steps[:k])
            if max_len and len(path.ids) + self.tokens_after() > max_len:
                log.warning("PRM context is %d tokens; steps of %r past it get value 0", max_len, question[:40])
                break
            out.append(path)
        return out

    def prompt_ids(self, question: str) -> list[int]:
        return self.prompt(question, ()).ids

    def tokens_after(self) -> int:
        return self.config.critique_tokens + len(self.verdict_ids)

    def verdict(self, prompt: EncodedPath, critique: Sequence[int], eos: bool = False) -> EncodedPath:
        """The sequence read for the verdict: the prompt, its critique (without the EOS that ended it) and the
        verdict prompt, read at its last token; it shares with other sequences what its prompt does."""
        ids = [*prompt.ids, *(critique[:-1] if eos else critique), *self.verdict_ids]
        return EncodedPath(ids, [len(ids) - 1], prompt.shared)

    def read_vllm(self, llm, prompts: list[EncodedPath], read_cache: bool = True) -> list[tuple[list[float], Spent]]:
        """The critiques in one `generate` call (greedy, prefix cache on: siblings share their prompt's start), then
        the verdicts in one more, each through the cache that now holds its prompt and critique."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from tdrm_search.policies.vllm import finish_reason

        spent = [Spent(0, 0) for _ in prompts]
        reads = [self.verdict(p, ()) for p in prompts]
        if self.config.critique_tokens:
            params = SamplingParams(
                max_tokens=self.config.critique_tokens,
                temperature=0.0,
                skip_reading_prefix_cache=skip_cache(read_cache),
            )
            outs = llm.generate([TokensPrompt(prompt_token_ids=p.ids) for p in prompts], params, use_tqdm=False)
            critiques = [out.outputs[0] for out in outs]
            reads = [
                self.verdict(p, list(c.token_ids), finish_reason(c) == "eos")
                for p, c in zip(prompts, critiques, strict=True)
            ]
            spent = [
                Spent(len(out.prompt_token_ids), out.num_cached_tokens or 0, len(c.token_ids))
                for out, c in zip(outs, critiques, strict=True)
            ]
        values = super().read_vllm(llm, reads, read_cache)
        return [
            (v, Spent(s.prompt + len(out.prompt_token_ids), s.cached + (out.num_cached_tokens or 0), s.generated))
            for (v, out), s in zip(values, spent, strict=True)
        ]

    def spent(self, out: Spent) -> Spent:
        return out
