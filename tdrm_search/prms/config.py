"""How a PRM reads a trajectory: step tag, read-out, prompt template. Loaded with the model, never guessed."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from tdrm_search.prms.heads import HEAD_TYPES

CONFIG_FILE = "tdrm_prm.json"
HEADS = tuple(HEAD_TYPES)


@dataclass(frozen=True)
class PRMConfig:
    """A PRM's input format and read-out.

    head: the read-out, one of HEADS, each a module of `prms/heads/`: "lm" reads P(good) / (P(good) + P(bad))
          from the LM head at each step tag (Math-Shepherd style); "token_classify" reads class `positive_label`
          of a token classifier at each step tag (Qwen2.5-Math-PRM); "value" reads sigmoid of a 1-logit
          sequence-classification head at the last token of the prefix rendered as a whole conversation, one
          sequence per step (TDRM's scalar PRMs, outcome RMs); "likelihood" reads sigmoid(scale * m_t + bias)
          from a causal LM, m_t the log-probability of the least likely token of steps 0..t; `scale` and `bias`
          are learned by `prm_train`.
    prompt_template: a format string with `{question}`, or "chat" to render the tokenizer's chat template
          (with `system_prompt` when given). Tag heads append the steps after the generation prompt; the value
          head renders them as the assistant's closed turn.
    Each step is stripped of surrounding white space and written as `step_join` (between steps) + step + `step_tag`
    (heads that read no tag, value and likelihood, blank the tag fields). README "PRMs" says which head to choose.
    """

    head: str = "lm"
    step_tag: str = "<|step|>"
    good_token: str | None = "<|good|>"
    bad_token: str | None = "<|bad|>"
    positive_label: int = 1
    prompt_template: str = "chat"
    system_prompt: str | None = None
    step_join: str = ""
    step_delimiter: str = "\n\n"
    aggregation: str = "last"
    scale: float = 1.0
    bias: float = 0.0

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"PRM config: head must be one of {HEADS}, got {self.head!r}")
        head = HEAD_TYPES[self.head]
        if not head.reads_tag:  # the tag fields do not apply
            for name, empty in (("step_tag", ""), ("good_token", None), ("bad_token", None)):
                object.__setattr__(self, name, empty)
        head.check_config(self)
        if self.prompt_template != "chat" and "{question}" not in self.prompt_template:
            raise ValueError("PRM config: prompt_template must be 'chat' or contain '{question}'")

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / CONFIG_FILE
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> PRMConfig:
        path = Path(folder) / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: a PRM folder needs a {CONFIG_FILE} "
                f"(write one with PRMConfig(...).save(folder), pass config=PRESETS[...], or on the command line "
                f"--prm-config PRESET, e.g. --prm-config tdrm for a PRM that THUDM/TDRM released)"
            )
        data = json.loads(path.read_text())
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown PRM config keys {sorted(unknown)}")
        return cls(**data)


PRESETS: dict[str, PRMConfig] = {
    # peiyi9979/math-shepherd-mistral-7b-prm: "question step ки\nstep ки", read "+" against "-".
    "math_shepherd": PRMConfig(
        head="lm",
        step_tag=" ки",
        good_token="+",
        bad_token="-",
        prompt_template="{question} ",
        step_join="\n",
        aggregation="min",
    ),
    # Qwen/Qwen2.5-Math-PRM-7B: chat template, steps each followed by <extra_0>, 2-class head.
    "qwen25_math_prm": PRMConfig(
        head="token_classify",
        step_tag="<extra_0>",
        good_token=None,
        bad_token=None,
        positive_label=1,
        prompt_template="chat",
        system_prompt="Please reason step by step, and put your final answer within \\boxed{}.",
        aggregation="min",
    ),
    # THUDM/TDRM's scalar PRMs: [user: question, assistant: steps joined by a blank line], closed turn, no
    # system prompt of our own, 1-logit sequence-classification head read at the last token.
    "tdrm": PRMConfig(
        head="value",
        prompt_template="chat",
        step_join="\n\n",
        aggregation="last",
    ),
}
