"""Every PRM preset against its model card's own scoring code (issue 29, parts 2 and 4).

Each fixture builds a tiny random-weight model in the released layout (the architecture class and checkpoint keys,
the special tokens, the chat template, the head shape) on the lab tokenizer, without a tdrm_prm.json (the preset is
detected from config.json, or named where the architecture is ambiguous). Each reference scorer is written the way
the card's code scores (its own input building, its own read-out, one forward per path or per step) on the
in-memory modules the folder was saved from; tdrm must give each step's value within 1e-4 on transformers and,
where vLLM 0.32 runs the architecture, on vLLM."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import CHATML, tdrm_layout_prm, tiny_config
from safetensors.torch import save_file
from transformers import (
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2ForCausalLM,
    Qwen2ForTokenClassification,
    Qwen2Model,
)

from tdrm_search.config import METHODS
from tdrm_search.engine import search
from tdrm_search.loading import LAB_POLICY
from tdrm_search.prms.base import ScoreRequest
from tdrm_search.prms.config import CONFIG_FILE, PRESETS, PRMConfig, detect_preset
from tdrm_search.prms.hf import HFPRM
from tdrm_search.prms.qwen_prm import ARCHITECTURE as ARCH
from tdrm_search.types import Problem

QUESTION = "Sam has 7 coins. On day 1 he finds 5. On day 2 each coin becomes 3. How many coins after day 2?"
PROBLEM = Problem(QUESTION, "36")
STEPS = ("Day 1: 7 + 5 = 12", "Day 2: 12 * 3 = 36", "The answer is 36")
# a search's calls: a whole path, then the newest step of each prefix (scored from `start`)
REQUESTS = [ScoreRequest(PROBLEM, STEPS), *(ScoreRequest(PROBLEM, STEPS[:k], k - 1) for k in (1, 2, 3))]
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + "
    "m['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def lab_tokenizer(special=(), **extra):
    tokenizer = AutoTokenizer.from_pretrained(LAB_POLICY)
    if special:
        tokenizer.add_special_tokens({"additional_special_tokens": list(special)})
    for name, value in extra.items():
        setattr(tokenizer, name, value)
    return tokenizer


def save_layout(folder, config, weights, tokenizer):
    save_file({k: v.contiguous() for k, v in weights.items()}, folder / "model.safetensors", metadata={"format": "pt"})
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# the released layouts and their cards' scorers


@pytest.fixture(scope="module")
def qwen25(tmp_path_factory):
    """Qwen2.5-Math-PRM: Qwen2ForProcessRewardModel (backbone `model.*`, `score` = Linear-ReLU-Linear(h, 2)),
    `<extra_0>` and ChatML."""
    tokenizer = lab_tokenizer(["<extra_0>", "<|im_start|>", "<|im_end|>"], chat_template=CHATML)
    config = tiny_config(len(tokenizer), tie_word_embeddings=False, num_labels=2)
    config.architectures = ["Qwen2ForProcessRewardModel"]
    torch.manual_seed(11)
    backbone = Qwen2Model(config).eval()
    score = torch.nn.Sequential(torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 2)).eval()
    weights = {f"model.{k}": v for k, v in backbone.state_dict().items()}
    weights |= {f"score.{k}": v for k, v in score.state_dict().items()}
    folder = save_layout(tmp_path_factory.mktemp("Qwen2.5-Math-PRM-7B"), config, weights, tokenizer)

    @torch.no_grad()
    def card(steps):  # the model card: one forward of the closed conversation, P(class 1) at every <extra_0>
        messages = [
            {"role": "system", "content": QWEN_SYSTEM},
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"},
        ]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        ids = torch.tensor([tokenizer.encode(text)])
        probs = score(backbone(input_ids=ids).last_hidden_state).softmax(-1)
        return probs[ids == tokenizer.convert_tokens_to_ids("<extra_0>")][:, 1].tolist()

    return folder, card


@pytest.fixture(scope="module")
def skywork(tmp_path_factory):
    """Skywork-o1-Open-PRM: Qwen2ForPrmModel (a Qwen2 causal LM plus `v_head.summary` = Linear(h, 1)), a BOS."""
    tokenizer = lab_tokenizer(bos_token="<|endoftext|>")
    config = tiny_config(len(tokenizer), tie_word_embeddings=False)
    config.architectures = ["Qwen2ForPrmModel"]
    torch.manual_seed(12)
    lm = Qwen2ForCausalLM(config).eval()
    v_head = torch.nn.Linear(128, 1).eval()
    weights = lm.state_dict() | {f"v_head.summary.{k}": v for k, v in v_head.state_dict().items()}
    folder = save_layout(tmp_path_factory.mktemp("skywork-prm"), config, weights, tokenizer)

    @torch.no_grad()
    def card(steps):  # skywork-o1-prm-inference: prepare_input, then sigmoid(v_head) at the reward flags
        ids = tokenizer.encode(tokenizer.bos_token + QUESTION + "\n")
        flags = [0] * len(ids)
        step_token = tokenizer.encode("\n")[-1]
        for step in "\n".join(steps).split("\n"):
            step_ids = tokenizer.encode(step) + [step_token]
            ids, flags = ids + step_ids, flags + [0] * (len(step_ids) - 1) + [1]
        hidden = lm(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0]
        rewards = v_head(hidden)[:, 0].sigmoid()
        return rewards[torch.tensor(flags) == 1].tolist()

    return folder, card


@pytest.fixture(scope="module")
def rlhflow(tmp_path_factory):
    """RLHFlow/Llama3.1-8B-PRM-*: LlamaForCausalLM with Llama 3's header tokens and chat template."""
    special = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tokenizer = lab_tokenizer(special, chat_template=LLAMA3, bos_token="<|begin_of_text|>")
    sizes = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2)
    config = LlamaConfig(vocab_size=len(tokenizer), num_key_value_heads=2, max_position_embeddings=512, **sizes)
    torch.manual_seed(13)
    lm = LlamaForCausalLM(config).eval()
    folder = tmp_path_factory.mktemp("rlhflow-prm")
    lm.save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    @torch.no_grad()
    def card(steps):  # the model card: one conversation per step, softmax over (+, -) of logits[:, -3]
        plus, minus = tokenizer.encode("+")[-1], tokenizer.encode("-")[-1]
        conversation, values = [], []
        for k, step in enumerate(steps):
            text = QUESTION + " " + step if k == 0 else step
            conversation += [{"content": text, "role": "user"}, {"content": "+", "role": "assistant"}]
            rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
            ids = torch.tensor([tokenizer.encode(rendered, add_special_tokens=False)])
            values.append(lm(input_ids=ids).logits[:, -3, [plus, minus]].softmax(-1)[0, 0].item())
        return values

    return folder, card


@pytest.fixture(scope="module")
def trl(tmp_path_factory):
    """A PRM trained by TRL's PRMTrainer: Qwen2ForTokenClassification, 2 labels, no chat template."""
    tokenizer = lab_tokenizer()
    torch.manual_seed(14)
    model = Qwen2ForTokenClassification(tiny_config(len(tokenizer), num_labels=2, pad_token_id=tokenizer.pad_token_id))
    folder = tmp_path_factory.mktemp("Qwen2.5-Math-1.5B-Instruct-PRM-0.2")
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    @torch.no_grad()
    def card(steps):  # the model card: "\n".join((prompt, *steps)) + "\n", the last token's label, per step
        values = []
        for k in range(1, len(steps) + 1):
            ids = tokenizer("\n".join((QUESTION, *steps[:k])) + "\n", return_tensors="pt")["input_ids"]
            values.append(model(input_ids=ids).logits[0, -1].softmax(-1)[1].item())
        return values

    return folder, card


@pytest.fixture(scope="module")
def math_shepherd(tmp_path_factory):
    """peiyi9979/math-shepherd-mistral-7b-prm's form: a causal LM read at each " ки" for "+" against "-"."""
    from tokenizers import AddedToken

    tokenizer = lab_tokenizer()
    tokenizer.add_tokens([AddedToken(" ки", normalized=False)])
    torch.manual_seed(15)
    lm = Qwen2ForCausalLM(tiny_config(len(tokenizer), tie_word_embeddings=True)).eval()
    folder = tmp_path_factory.mktemp("math-shepherd")
    lm.save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    @torch.no_grad()
    def card(steps):  # the model card: f"{question} {output}", softmax over (+, -) where the id is the tag's
        output = "\n".join(step + " ки" for step in steps)
        ids = torch.tensor([tokenizer.encode(f"{QUESTION} {output}")])
        candidates = [tokenizer.encode("+")[-1], tokenizer.encode("-")[-1]]
        scores = lm(input_ids=ids).logits[:, :, candidates].softmax(-1)[:, :, 0]
        return scores[ids == tokenizer.encode(" ки")[-1]].tolist()

    return folder, card


@pytest.fixture(scope="module")
def tdrm(tmp_path_factory):
    """THUDM/TDRM's scalar PRMs: Qwen2ForSequenceClassification, 1 label, ChatML, an added [PAD]."""
    folder = tdrm_layout_prm(tmp_path_factory.mktemp("tdrm-prm"), seed=16)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()

    @torch.no_grad()
    def card(steps):  # TDRM's reward: the rendered conversation tokenised with defaults, sigmoid at the last token
        values = []
        for k in range(1, len(steps) + 1):
            messages = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "\n\n".join(steps[:k])}]
            text = tokenizer.apply_chat_template(messages, tokenize=False)
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            values.append(model(input_ids=ids).logits[0, 0].sigmoid().item())
        return values

    return folder, card


# (fixture, preset, what a folder without tdrm_prm.json is read with: a preset, or None where ambiguous)
LAYOUTS = [
    ("qwen25", "qwen25_math_prm", "qwen25_math_prm"),
    ("skywork", "skywork_prm", "skywork_prm"),
    ("rlhflow", "rlhflow", None),
    ("trl", "trl_prm", None),
    ("math_shepherd", "math_shepherd", None),
    ("tdrm", "tdrm", None),
]
VLLM_LAYOUTS = ["qwen25", "rlhflow", "trl", "math_shepherd"]  # tdrm's vLLM path: tests/test_value_head.py


def tdrm_values(prm) -> list[float]:
    """The values of REQUESTS, flat: the whole path's, then each newest step's."""
    return [v for scores in prm.score(REQUESTS).scores for v in scores]


def expected(card) -> list[float]:
    whole = card(STEPS)
    return whole + whole


@pytest.mark.parametrize(("fixture", "preset", "detected"), LAYOUTS)
def test_each_preset_scores_as_its_model_card_on_transformers(fixture, preset, detected, request):
    folder, card = request.getfixturevalue(fixture)
    prm = HFPRM(folder, config=PRESETS[preset])
    got, want = tdrm_values(prm), expected(card)
    assert len(set(want)) == 3  # the reference reads each step, not one pooled value
    assert got == pytest.approx(want, abs=1e-4)
    assert tdrm_values(prm) == pytest.approx(got, abs=1e-5)  # read again through the key/value store
    fresh = HFPRM(folder, config=PRESETS[preset], cache_tokens=0)
    assert tdrm_values(fresh) == pytest.approx(got, abs=1e-5)


@pytest.mark.parametrize(("fixture", "preset", "detected"), LAYOUTS)
def test_a_folder_without_tdrm_prm_json_picks_a_preset_only_from_its_config(fixture, preset, detected, request):
    """An architecture only one released PRM family uses chooses its preset; one several formats share (a causal LM,
    a token or sequence classifier, whose prompt and separator config.json does not record) is a clear error listing
    the presets. The folder's name never chooses (the TRL folder is named like a Qwen2.5-Math PRM)."""
    folder, _ = request.getfixturevalue(fixture)
    assert not (folder / CONFIG_FILE).exists()
    if detected is None:
        with pytest.raises(FileNotFoundError, match="--prm-config") as info:
            PRMConfig.load(folder)
        assert all(name in str(info.value) for name in PRESETS)
        return
    assert detect_preset(folder) == detected and PRMConfig.load(folder) == PRESETS[detected]
    renamed = folder.parent / f"{folder.name}-math-shepherd"  # a misleading name changes nothing
    if not renamed.exists():
        renamed.symlink_to(folder, target_is_directory=True)
    assert detect_preset(renamed) == detected


def test_an_ambiguous_or_unknown_config_is_a_clear_error(tmp_path):
    for architectures in (["LlamaForCausalLM"], ["Qwen2ForTokenClassification"], [], ["Qwen2ForPrmModel", ARCH]):
        (tmp_path / "config.json").write_text(json.dumps({"architectures": architectures}))
        with pytest.raises(FileNotFoundError, match="one of math_shepherd, qwen25_math_prm") as info:
            PRMConfig.load(tmp_path)
        assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_a_preset_whose_backend_cannot_run_it_says_so(skywork):
    from tdrm_search.prms.vllm import VLLMPRM

    with pytest.raises(ValueError, match="no vLLM architecture.*HFPRM"):
        VLLMPRM(skywork[0])


@pytest.mark.vllm
@pytest.mark.parametrize("fixture", VLLM_LAYOUTS)
def test_each_preset_scores_as_its_model_card_on_vllm(fixture, request):
    from tdrm_search.prms.vllm import VLLMPRM

    folder, card = request.getfixturevalue(fixture)
    preset = next(p for f, p, _ in LAYOUTS if f == fixture)
    prm = VLLMPRM(folder, config=PRESETS[preset])
    assert tdrm_values(prm) == pytest.approx(expected(card), abs=1e-4)


@pytest.mark.parametrize(("fixture", "preset", "detected"), LAYOUTS)
def test_every_method_runs_end_to_end_with_each_preset(fixture, preset, detected, request, hf_lab_policy):
    folder, _ = request.getfixturevalue(fixture)
    prm = HFPRM(folder, config=PRESETS[preset])
    problem = Problem("Sam has 3 coins. On day 1 he finds 2. How many coins after day 1?", "5")
    for method in METHODS:
        result = search(problem, hf_lab_policy, prm, method=method, n=2, seed=0, max_steps=3)
        assert result.candidates and all(0 <= v <= 1 for t in result.candidates for v in t.step_scores)
        assert result.stats["prm_tokens"] > 0
