"""The generative head (issue 29, part 3) and its presets `thinkprm` and `genprm`.

A tiny random-weight causal LM in the released layout of both families (a Qwen2 causal LM with DeepSeek-R1's
chat template and special tokens; the verdict words added as single tokens) is scored by tdrm with and without a
critique, on transformers and on vLLM, against a reference scorer written plainly with transformers: the card's
prompt text built as its code builds it, `generate` for the greedy critique, one forward pass, softmax over the two
verdict tokens. Every step's value must agree within 1e-4."""

from __future__ import annotations

import copy
from dataclasses import replace
from functools import cache

import pytest
import torch
from conftest import tiny_config
from tokenizers import AddedToken
from transformers import AutoTokenizer, Qwen2ForCausalLM

from tdrm_search.baselines.one_call_per_node import FullPathRescoring
from tdrm_search.config import METHODS
from tdrm_search.cost import prm_tree_tokens
from tdrm_search.engine import search
from tdrm_search.loading import LAB_POLICY
from tdrm_search.prms.base import ScoreRequest
from tdrm_search.prms.config import PRESETS, PRMConfig
from tdrm_search.prms.heads import head_for
from tdrm_search.prms.hf import HFPRM
from tdrm_search.types import Problem

QUESTION = "Sam has 7 coins. On day 1 he finds 5. On day 2 each coin becomes 3. How many coins after day 2?"
PROBLEM = Problem(QUESTION, "36")
STEPS = ("Day 1: 7 + 5 = 12", "Day 2: 12 * 3 = 36", "The answer is 36")
# a search's calls: a whole path, then the newest step of each prefix
REQUESTS = [ScoreRequest(PROBLEM, STEPS), *(ScoreRequest(PROBLEM, STEPS[:k], k - 1) for k in (1, 2, 3))]
CRITIQUE = 6  # critique tokens in the tests (the presets allow 2048)
R1 = (  # DeepSeek-R1-Distill-Qwen's chat template, cut to what a verifier prompt uses
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}{{ '<｜User｜>' + m['content'] }}"
    "{% else %}{{ '<｜Assistant｜>' + m['content'] + '<｜end▁of▁sentence｜>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    """ThinkPRM's and GenPRM's layout: Qwen2ForCausalLM, R1's special tokens and template, each verdict word one
    token. Returns the folder and the in-memory model and tokenizer it was saved from."""
    tokenizer = AutoTokenizer.from_pretrained(LAB_POLICY)
    special = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"]
    tokenizer.add_special_tokens(
        {"bos_token": special[0], "eos_token": special[1], "additional_special_tokens": special}
    )
    tokenizer.add_tokens([AddedToken(w, normalized=False) for w in (" yes", " no", "Yes", "No")])
    tokenizer.chat_template = R1
    config = tiny_config(len(tokenizer), tie_word_embeddings=True)
    config.max_position_embeddings = 2048  # the instructions and a lab problem, a character a token, pass 512
    torch.manual_seed(21)
    model = Qwen2ForCausalLM(config).eval()
    model.config.eos_token_id = model.generation_config.eos_token_id = tokenizer.eos_token_id
    folder = tmp_path_factory.mktemp("ThinkPRM-1.5B")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer


def thinkprm_text(tokenizer, steps) -> str:
    """ThinkPRM's inference prompt (utils/helper.py): the instruction with the problem and "Step i: " steps in one
    user turn, the generation prompt, then "\\nLet's verify step by step:"."""
    solution = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, start=1))
    user = (
        f"You are given a math problem and a proposed step-by-step solution:\n\n[Math Problem]\n\n{QUESTION}\n\n"
        f"[Solution]\n\n{solution}\n\nReview and critique each step in the proposed solution to determine whether "
        "each step is correct. If the solution is incomplete, only verify the provided steps."
    )
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
    )
    return text + "\nLet's verify step by step:"


def genprm_text(tokenizer, steps) -> str:
    """GenPRM's prompt for the last paragraph, with the paragraphs in one user turn (see the preset's comment)."""
    messages = [
        {"role": "system", "content": PRESETS["genprm"].system_prompt},
        {"role": "user", "content": QUESTION + "\n" + "\n\n".join(steps)},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + f"<analyze>\nLet's analyze the Paragraph {len(steps)} step by step: "


CARDS = {  # preset: (its prompt, the text before the verdict, the verdict words)
    "thinkprm": (thinkprm_text, "\nIs the solution correct?", (" yes", " no")),
    "genprm": (genprm_text, "</analyze>\n<output>\n**Judgement**: $\\boxed{", ("Yes", "No")),
}


@pytest.fixture(scope="module")
def expected(verifier):
    """The reference values of REQUESTS (the whole path's, then each newest step's) for (preset, critique)."""
    _, model, tokenizer = verifier
    return cache(lambda preset, critique: 2 * reference(model, tokenizer, preset, critique))


@torch.no_grad()
def reference(model, tokenizer, preset: str, critique: int) -> list[float]:
    """Each step's P(good) / (P(good) + P(bad)), plainly: the prompt, a greedy critique from `generate`, the
    verdict text, one forward pass and a softmax over the two verdict tokens."""
    text_of, verdict, words = CARDS[preset]
    good, bad = (tokenizer.convert_tokens_to_ids(w) for w in words)
    values = []
    for k in range(1, len(STEPS) + 1):
        ids = torch.tensor([tokenizer.encode(text_of(tokenizer, STEPS[:k]), add_special_tokens=False)])
        if critique:
            ids = model.generate(ids, max_new_tokens=critique, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        ids = torch.cat([ids, torch.tensor([tokenizer.encode(verdict, add_special_tokens=False)])], 1)
        values.append(model(input_ids=ids).logits[0, -1, [good, bad]].softmax(-1)[0].item())
    return values


def config(preset: str, critique: int) -> PRMConfig:
    return replace(PRESETS[preset], critique_tokens=critique)


def flat(prm) -> list[float]:
    out = prm.score(REQUESTS)
    return [v for scores in out.scores for v in scores]


CASES = [(p, c) for p in CARDS for c in (0, CRITIQUE)]


@pytest.mark.parametrize(("preset", "critique"), CASES)
def test_generative_presets_score_as_the_reference_on_transformers(preset, critique, verifier, expected):
    want = expected(preset, critique)
    assert len({round(v, 6) for v in want}) == 3  # each step read apart
    prm = HFPRM(verifier[0], config=config(preset, critique))
    assert flat(prm) == pytest.approx(want, abs=1e-4)
    assert flat(prm) == pytest.approx(want, abs=1e-4)  # again, from the key/value store


@pytest.fixture(scope="module")
def engine(verifier):
    """One vLLM engine on the verifier for the module (both presets read the same folder)."""
    from tdrm_search.vllm_engine import make_llm

    return make_llm(verifier[0])


@pytest.mark.vllm
@pytest.mark.parametrize(("preset", "critique"), CASES)
def test_generative_presets_score_as_the_reference_on_vllm(preset, critique, engine, expected):
    """The critique is vLLM's own greedy `generate`; the verdict's two log-probabilities are exact (vLLM V1 returns
    raw log-probabilities of the requested ids, before any sampling processing), so float32 agrees within 1e-4."""
    from tdrm_search.prms.vllm import VLLMPRM

    assert flat(VLLMPRM(engine, config=config(preset, critique))) == pytest.approx(expected(preset, critique), abs=1e-4)


def sibling_reads(prm) -> tuple:
    """A parent step scored, then its two children in one call, on a question no earlier test asked."""
    problem = Problem("Ann has 4 pens. On day 1 she buys 9. How many pens after day 1?", "13")
    parent = prm.score([ScoreRequest(problem, ("Day 1: 4 + 9 = 13",))])
    children = [("Day 1: 4 + 9 = 13", step) for step in ("The answer is 13", "The answer is 14")]
    return parent, prm.score([ScoreRequest(problem, steps, 1) for steps in children])


@pytest.mark.vllm
def test_siblings_share_their_prompt_through_vllms_prefix_cache(engine, capsys):
    """Each step costs a critique request and a verdict request; the verdict reads its prompt and critique from the
    prefix cache, and a child's critique request reads the question and the steps it shares with its parent."""
    from tdrm_search.prms.vllm import VLLMPRM

    parent, children = sibling_reads(VLLMPRM(engine, config=config("thinkprm", CRITIQUE)))
    with capsys.disabled():
        print(f"\nvLLM generative reads: parent {parent}\n  children {children}")
    assert parent.generated_tokens == [CRITIQUE] and children.generated_tokens == [CRITIQUE, CRITIQUE]
    assert 0 < parent.cached_tokens[0] < parent.tokens[0]  # the verdict request: its prompt and critique cached
    assert all(c > parent.cached_tokens[0] for c in children.cached_tokens)  # and the shared question and step


def test_a_critique_that_ends_at_eos_is_read_without_it(verifier, expected):
    """A verifier whose first greedy token is its EOS writes an empty critique: the verdict follows the prompt."""
    folder, model, tokenizer = verifier
    model = copy.deepcopy(model)
    head = head_for(config("genprm", CRITIQUE), tokenizer)
    prompts = [torch.tensor([p.ids]) for p in head.encode(QUESTION, STEPS)]
    model.generation_config.eos_token_id = sorted({int(model(input_ids=p).logits[0, -1].argmax()) for p in prompts})
    out = HFPRM(model, tokenizer, config("genprm", CRITIQUE)).score(REQUESTS)
    assert [v for scores in out.scores for v in scores] == pytest.approx(expected("genprm", 0), abs=1e-4)
    assert out.generated_tokens == [3, 1, 1, 1]  # each critique the EOS alone, counted


def test_the_full_path_baseline_counts_the_critiques_it_writes(verifier):
    prm = HFPRM(verifier[0], config=config("thinkprm", CRITIQUE))
    out = FullPathRescoring(prm).score(REQUESTS)
    assert out.generated_tokens == [CRITIQUE * len(r.steps) for r in REQUESTS]  # every step of the path critiqued again


def test_siblings_share_their_prompt_through_the_key_value_store(verifier):
    parent, children = sibling_reads(HFPRM(verifier[0], config=config("thinkprm", CRITIQUE)))
    assert parent.generated_tokens == [CRITIQUE] and children.generated_tokens == [CRITIQUE, CRITIQUE]
    assert all(0 < c < t for c, t in zip(children.cached_tokens, children.tokens, strict=True))
    assert all(c > parent.cached_tokens[0] for c in children.cached_tokens)


@pytest.mark.parametrize("preset", CARDS)
def test_every_method_runs_with_each_generative_preset(preset, verifier, hf_lab_policy, lab_problems):
    prm = HFPRM(verifier[0], config=config(preset, 4))
    for method in METHODS:
        result = search(lab_problems[0], hf_lab_policy, prm, method=method, n=2, seed=0, max_steps=3)
        assert result.candidates and all(0 <= v <= 1 for t in result.candidates for v in t.step_scores), method
        assert result.stats["prm_generated_tokens"] > 0, method
    result = search(lab_problems[0], hf_lab_policy, prm, method="beam", n=2, seed=0, max_steps=3)
    stats = result.stats
    assert 0 < stats["prm_generated_tokens"] <= 4 * (stats["nodes"] - 1)
    assert 0 < stats["prm_cached_tokens"] < stats["prm_tokens"]
    unique, trie = prm_tree_tokens(prm, result)  # critiques and verdict prompts counted at most once per path
    assert 0 < trie <= unique


def test_prm_train_evaluation_and_rl_rewards_read_it_like_any_head(verifier):
    from prm_train.data import Rollout
    from prm_train.evaluate import score_rollouts
    from rl_bridge.reward import RewardConfig, RewardFunction, RewardItem

    prm = HFPRM(verifier[0], config=config("genprm", 2))
    rollout = Rollout(PROBLEM, list(STEPS), [10, 10, 10], outcome=True)
    assert [len(v) for v in score_rollouts(prm, [rollout])] == [3]
    reward = RewardFunction(RewardConfig(mode="clip_delta", grade_workers=1), prm)
    out = reward.score([RewardItem(QUESTION, "\n\n".join(STEPS), "36")])
    assert len(out[0].step_rewards) == 3


def test_it_is_not_trainable(verifier):
    from prm_train.model import check_tokenizer

    _, model, tokenizer = verifier
    with pytest.raises(ValueError, match="prm_train trains heads .*'generative'"):
        check_tokenizer(model, tokenizer, PRESETS["thinkprm"])


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"good_token": None}, "verdict words as good_token and bad_token"),
        ({"bad_token": ""}, "verdict words as good_token and bad_token"),
        ({"prompt_template": "{question}"}, "must contain '{question}' and '{solution}'"),
        ({"prompt_template": "chat"}, "must contain '{question}' and '{solution}'"),
        ({"step_template": "Step {index}"}, "step_template must contain '{step}'"),
        ({"critique_tokens": -1}, "critique_tokens must be an integer >= 0"),
        ({"critique_tokens": 1.5}, "critique_tokens must be an integer >= 0"),
        ({"verdict_prompt": ""}, "needs a verdict_prompt"),
    ],
)
def test_a_bad_generative_config_is_a_clear_error(fields, error):
    with pytest.raises(ValueError, match=error.replace("{", "\\{").replace("}", "\\}")):
        replace(PRESETS["thinkprm"], **fields)


def test_a_verdict_word_must_be_one_token_and_the_tokenizer_needs_a_chat_template(verifier):
    tokenizer = verifier[2]
    with pytest.raises(ValueError, match="good_token ' correct' is 8 tokens in this tokenizer; it must be exactly one"):
        head_for(replace(PRESETS["thinkprm"], good_token=" correct"), tokenizer)
    lab = AutoTokenizer.from_pretrained(LAB_POLICY)
    lab.add_tokens([AddedToken(w, normalized=False) for w in (" yes", " no")])
    lab.chat_template = None
    with pytest.raises(ValueError, match="asks its question with the chat template; the tokenizer has none"):
        head_for(PRESETS["thinkprm"], lab).check_format("here")
