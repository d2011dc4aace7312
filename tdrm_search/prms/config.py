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
          "tag_value" reads sigmoid of a causal LM's scalar value head at each step tag (Skywork's PRMs); "turns"
          renders each step as a user turn answered by the assistant with `step_tag` and reads P(good) / (P(good) +
          P(bad)) of that answer (RLHFlow's PRMs).
    Each step is stripped of surrounding white space and written as `step_join` (between steps) + step + `step_tag`
    (heads that read no tag, value and likelihood, blank the tag fields); `split_tag` tokenises the tag apart from
    its step (the step's ids, then the tag's), as Skywork's and TRL's PRMs were trained. A `prompt_template` may
    write the tokenizer's BOS token with `{bos}`. README "PRMs" says which head to choose.

    The "generative" head (ThinkPRM, GenPRM) reads a verifier LM: its chat template renders one user turn,
    `prompt_template` with `{question}` and `{solution}` (the steps so far, each written as `step_template` with
    `{index}` (from 1) and `{step}`, joined by `step_join`), then the assistant starts with `critique_prompt`
    (`{index}`: the step judged), greedily writes at most `critique_tokens` tokens (0: none; it stops early at
    EOS), and `verdict_prompt` follows; the value is P(good) / (P(good) + P(bad)) of the next token, `good_token`
    and `bad_token` being the verdict words (one token each).
    """

    head: str = "lm"
    step_tag: str = "<|step|>"
    good_token: str | None = "<|good|>"
    bad_token: str | None = "<|bad|>"
    positive_label: int = 1
    prompt_template: str = "chat"
    system_prompt: str | None = None
    step_join: str = ""
    split_tag: bool = False
    step_delimiter: str = "\n\n"
    aggregation: str = "last"
    scale: float = 1.0
    bias: float = 0.0
    step_template: str = "{step}"
    critique_prompt: str = ""
    critique_tokens: int = 0
    verdict_prompt: str = ""

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"PRM config: head must be one of {HEADS}, got {self.head!r}")
        head = HEAD_TYPES[self.head]
        if not head.reads_tag:  # the tag fields do not apply
            tokens = () if head.reads_words else (("good_token", None), ("bad_token", None))
            for name, empty in (("step_tag", ""), *tokens):
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
        """The folder's tdrm_prm.json; without one, the preset its config.json's architecture names unambiguously
        (`detect_preset`)."""
        path = Path(folder) / CONFIG_FILE
        if not path.is_file() and (Path(folder) / "config.json").is_file():
            return PRESETS[detect_preset(folder)]
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
    # Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B and -7B: bos + question + "\n", then each step's ids and the id of
    # "\n"; sigmoid of the value head (v_head.summary) at each step's "\n".
    "skywork_prm": PRMConfig(
        head="tag_value",
        step_tag="\n",
        good_token=None,
        bad_token=None,
        split_tag=True,
        prompt_template="{bos}{question}\n",
        aggregation="min",
    ),
    # RLHFlow/Llama3.1-8B-PRM-Deepseek-Data and -Mistral-Data: each step a user turn (the first "question step"),
    # the assistant answers "+"; P(+) / (P(+) + P(-)) at that answer.
    "rlhflow": PRMConfig(
        head="turns",
        step_tag="+",
        good_token="+",
        bad_token="-",
        prompt_template="{question} ",
        aggregation="min",
    ),
    # TRL's PRMTrainer (e.g. HuggingFaceH4/Qwen2.5-Math-1.5B-Instruct-PRM-0.2): *ForTokenClassification, 2 labels,
    # "question\nstep\nstep\n", label 1 (correct) read at each separator's last token.
    "trl_prm": PRMConfig(
        head="token_classify",
        step_tag="\n",
        good_token=None,
        bad_token=None,
        positive_label=1,
        split_tag=True,
        prompt_template="{question}\n",
        aggregation="min",
    ),
    # launch/ThinkPRM-1.5B, -7B, -14B (R1-Distill-Qwen). From mukhal/ThinkPRM's code (utils/helper.py, the prompt
    # "the models were trained with"; prm/thinkprm_api.py; search-and-learn's config): one user turn with the
    # problem and the steps written "Step i: ..." joined by "\n" (as its beam search sends them), the assistant's
    # generation prompt followed by "\nLet's verify step by step:", the verification, then "\nIs the solution
    # correct? " and the choice between "yes" and "no" (value: the softmax of the two). Not confirmed here: its code
    # picks the choice through SGLang's `select` over the text "yes"/"no", whose tokens after "correct? " are (for a
    # BPE vocabulary) " yes"/" no" read after "correct?", as here; it stops the verification at "Is the solution
    # correct?", "</think>", EOS or the next "Step i:" and allows up to 8192 tokens, where tdrm caps it at
    # critique_tokens (stopping at EOS only); the real tokenizer (that " yes" and " no" are one token each) is
    # checked when the model loads.
    "thinkprm": PRMConfig(
        head="generative",
        good_token=" yes",
        bad_token=" no",
        prompt_template=(
            "You are given a math problem and a proposed step-by-step solution:\n\n[Math Problem]\n\n{question}"
            "\n\n[Solution]\n\n{solution}\n\nReview and critique each step in the proposed solution to determine "
            "whether each step is correct. If the solution is incomplete, only verify the provided steps."
        ),
        step_template="Step {index}: {step}",
        step_join="\n",
        critique_prompt="\nLet's verify step by step:",
        critique_tokens=2048,
        verdict_prompt="\nIs the solution correct?",
        aggregation="last",
    ),
    # GenPRM/GenPRM-1.5B, -7B (R1-Distill-Qwen). From RyanLiu112/GenPRM's inference code (genprm_inference.py,
    # prm_evaluate.py, the README's example): the system prompt below; the problem then the paragraph in a user turn;
    # the assistant writes "<analyze>\nLet's analyze the Paragraph {k} step by step: ..." and, after its analysis,
    # "<output>\n**Judgement**: $\\boxed{Yes}" or "{No}"; the value is P(Yes) / (P(Yes) + P(No)) at that word.
    # Not as GenPRM's code: it sends each paragraph as its own user turn with its own earlier verifications as the
    # assistant turns between them, which a read of one step without chained critiques cannot rebuild, so here the
    # paragraphs so far are one user turn (joined by a blank line); it samples (temperature 0.6) where tdrm decodes
    # greedily, may run the Python code it writes (tdrm never runs code), and stops the analysis at "</analyze>\n",
    # where tdrm caps it at critique_tokens and closes it itself. Not confirmed: how "{Yes" is tokenised in its
    # vocabulary (here "{" ends the verdict prompt and "Yes"/"No" must be one token each, checked at load).
    "genprm": PRMConfig(
        head="generative",
        good_token="Yes",
        bad_token="No",
        system_prompt=(
            "You are a math teacher. Your task is to review and critique the paragraphs in solution step by step."
        ),
        prompt_template="{question}\n{solution}",
        step_join="\n\n",
        critique_prompt="<analyze>\nLet's analyze the Paragraph {index} step by step: ",
        critique_tokens=2048,
        verdict_prompt="</analyze>\n<output>\n**Judgement**: $\\boxed{",
        aggregation="min",
    ),
}


# architectures that only one released PRM family uses: a folder without tdrm_prm.json is read with its preset
DETECTED = {"Qwen2ForProcessRewardModel": "qwen25_math_prm", "Qwen2ForPrmModel": "skywork_prm"}
# architectures several formats share (the prompt, separator or chat layout is a training choice config.json does not
# record): the presets that may fit, for the error
CANDIDATES = {
    "ForTokenClassification": ("trl_prm", "qwen25_math_prm"),
    "ForSequenceClassification": ("tdrm",),
    "ForCausalLM": ("math_shepherd", "rlhflow", "thinkprm", "genprm"),
}


def detect_preset(folder: str | Path) -> str:
    """The preset a folder without tdrm_prm.json is read with, from its config.json only (never its name): an
    architecture that names exactly one preset (`DETECTED`). Anything else is a FileNotFoundError (no config) that
    lists the presets, those the architecture may fit first."""
    architectures = json.loads((Path(folder) / "config.json").read_text()).get("architectures") or []
    found = {DETECTED[a] for a in architectures if a in DETECTED}
    if len(found) == 1:
        return found.pop()
    fits = [p for a in architectures for end, names in CANDIDATES.items() if a.endswith(end) for p in names]
    fits = [p for p in dict.fromkeys(fits) if p in PRESETS]
    hint = f" (its architecture may fit {', '.join(fits)})" if fits else ""
    raise FileNotFoundError(
        f"{Path(folder) / CONFIG_FILE} not found and config.json's architectures {architectures} do not name one PRM "
        f"preset{hint}: write a {CONFIG_FILE} (PRMConfig(...).save(folder)), pass config=PRESETS[...], or on the "
        f"command line --prm-config PRESET, one of {', '.join(PRESETS)}"
    )
