"""PRM configs, encodings and the two backends' agreement, on real models."""

from __future__ import annotations

import pytest

from tdrm_search.engine import search_batch
from tdrm_search.loading import load_prm
from tdrm_search.prms.base import ScoreRequest
from tdrm_search.prms.config import PRESETS, PRMConfig
from tdrm_search.prms.constant import ConstantPRM
from tdrm_search.prms.encoding import encode_path
from tdrm_search.prms.hf import HFPRM
from tdrm_search.types import Problem

PROBLEM = Problem(
    "Sam has 7 coins. On day 1 he finds 5. On day 2 each coin becomes 3. How many coins after day 2?", "36"
)
STEPS = ("Day 1: 7 + 5 = 12\n\n", "Day 2: 12 * 3 = 36\n\n", "The answer is 36.")


def test_config_round_trip_and_clear_errors(tmp_path):
    PRMConfig(step_tag="<|step|>", aggregation="min").save(tmp_path)
    assert PRMConfig.load(tmp_path).aggregation == "min"
    with pytest.raises(FileNotFoundError, match="tdrm_prm.json"):
        PRMConfig.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="head"):
        PRMConfig(head="scalar")
    with pytest.raises(ValueError, match="good_token"):
        PRMConfig(head="lm", good_token=None)
    (tmp_path / "tdrm_prm.json").write_text('{"head": "lm", "colour": "red"}')
    with pytest.raises(ValueError, match="colour"):
        PRMConfig.load(tmp_path)


def test_a_path_encodes_as_a_prefix_of_its_extensions(random_prm_dir):
    prm = HFPRM(random_prm_dir)
    short = encode_path(prm.tokenizer, prm.config, PROBLEM.question, STEPS[:2])
    full = encode_path(prm.tokenizer, prm.config, PROBLEM.question, STEPS)
    assert full.ids[: len(short.ids)] == short.ids and full.ends[:2] == short.ends
    assert [full.ids[e] for e in full.ends] == [prm.tokenizer.convert_tokens_to_ids("<|step|>")] * 3


def test_hf_scores_alone_equal_scores_in_a_padded_batch(random_prm_dir):
    prm = HFPRM(random_prm_dir)
    alone = prm.score([ScoreRequest(PROBLEM, STEPS)]).scores[0]
    batch = prm.score([ScoreRequest(PROBLEM, STEPS[:1]), ScoreRequest(PROBLEM, STEPS), ScoreRequest(PROBLEM, STEPS, 2)])
    assert batch.scores[1] == pytest.approx(alone, abs=1e-6)
    assert batch.scores[0] == pytest.approx(alone[:1], abs=1e-6)
    assert batch.scores[2] == pytest.approx(alone[2:], abs=1e-6)


def test_a_missing_read_out_token_is_a_clear_error(random_prm_dir):
    with pytest.raises(ValueError, match="good_token"):
        HFPRM(random_prm_dir, config=PRMConfig(good_token="<|nope|>"))


@pytest.mark.vllm
def test_vllm_and_hf_prms_agree_and_vllm_reuses_its_cache(random_prm_dir, vllm_random_prm):
    requests = [ScoreRequest(PROBLEM, STEPS[:k]) for k in (1, 2, 3)]
    hf = HFPRM(random_prm_dir).score(requests).scores
    first = vllm_random_prm.score(requests)
    for a, b in zip(hf, first.scores, strict=True):
        assert b == pytest.approx(a, abs=1e-4)
    again = vllm_random_prm.score([ScoreRequest(PROBLEM, STEPS, start=2)])
    assert again.cached_tokens[0] > 0  # the first two steps' prefix came from the cache


@pytest.mark.slow
def test_external_prm_config_on_a_real_pretrained_model(tmp_path):
    """SmolLM2-135M read as a Math-Shepherd-style PRM: the preset's format on a real BPE tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tdrm_search.smollm2 import smollm2_path

    path = smollm2_path()
    prm = HFPRM(
        AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path), PRESETS["math_shepherd"]
    )
    out = prm.score([ScoreRequest(PROBLEM, STEPS)])
    assert len(out.scores[0]) == 3 and all(0 <= v <= 1 for v in out.scores[0])


@pytest.fixture(scope="session")
def qwen_prm_dir(tmp_path_factory):
    """A random-weight model in Qwen2.5-Math-PRM's layout (Qwen2 backbone + 2-layer score head), lab tokenizer."""
    import torch
    from conftest import tiny_config
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, Qwen2Model

    from tdrm_search.loading import LAB_POLICY
    from tdrm_search.prms.qwen_prm import ARCHITECTURE

    folder = tmp_path_factory.mktemp("qwen-prm")
    tokenizer = AutoTokenizer.from_pretrained(LAB_POLICY)
    config = tiny_config(len(tokenizer), tie_word_embeddings=False, num_labels=2, architectures=[ARCHITECTURE])
    torch.manual_seed(0)
    score = torch.nn.Sequential(torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 2))
    weights = {f"model.{k}": v for k, v in Qwen2Model(config).state_dict().items()}
    weights |= {f"score.{k}": v.contiguous() for k, v in score.state_dict().items()}
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    PRMConfig(head="token_classify", step_tag="<|step|>", good_token=None, bad_token=None).save(folder)
    return folder


QWEN_REQUESTS = [ScoreRequest(PROBLEM, STEPS), ScoreRequest(PROBLEM, STEPS[:2], start=1)]


def test_qwen25_math_prm_format_reads_every_tag_with_transformers(qwen_prm_dir):
    """The Qwen2.5-Math-PRM format on transformers (tests/test_prm_presets.py checks it against the model card's
    scoring on both backends)."""
    hf = HFPRM(qwen_prm_dir).score(QWEN_REQUESTS).scores
    assert [len(s) for s in hf] == [3, 1]
    assert len(set(hf[0])) == 3  # the head really reads each tag, not one pooled value
    assert hf[1][0] == pytest.approx(hf[0][1], abs=1e-5)  # scoring from `start` reads the same tag


@pytest.mark.parametrize("folder", ["random_prm_dir", "qwen_prm_dir", "value_prm_dir"])
def test_hf_prm_computes_each_distinct_token_once_and_scores_as_without_its_store(folder, request):
    """Search-shaped calls (two first steps, two children of one, a grandchild): with its key/value store the PRM
    computes exactly the tree's distinct tokens and returns what a store-less PRM returns; a small store stays small."""
    path = request.getfixturevalue(folder)
    stored, fresh, small = HFPRM(path), HFPRM(path, cache_tokens=0), HFPRM(path, cache_tokens=60)
    wrong = ("Day 1: 7 + 5 = 13\n\n", "Day 2: 12 * 3 = 35\n\n")
    rounds = [
        [ScoreRequest(PROBLEM, STEPS[:1]), ScoreRequest(PROBLEM, wrong[:1])],
        [ScoreRequest(PROBLEM, STEPS[:2], 1), ScoreRequest(PROBLEM, (STEPS[0], wrong[1]), 1)],
        [ScoreRequest(PROBLEM, STEPS, 2)],
    ]
    computed, paths = 0, []
    for batch in rounds:
        out, expected = stored.score(batch), fresh.score(batch).scores
        for got, want, from_small in zip(out.scores, expected, small.score(batch).scores, strict=True):
            assert got == pytest.approx(want, abs=1e-5) and from_small == pytest.approx(want, abs=1e-5)
        computed += sum(out.tokens) - sum(out.cached_tokens)
        paths += [row.ids for r in batch for row in stored.encode(r)]
        assert small.kv.tokens <= 60
    assert computed == len({tuple(ids[:k]) for ids in paths for k in range(1, len(ids) + 1)})
    assert sum(fresh.score(rounds[2]).cached_tokens) == 0


@pytest.mark.parametrize("folder", ["random_prm_dir", "value_prm_dir"])
def test_hf_prm_computes_a_round_of_many_problems_as_their_token_trie(folder, request):
    """A first round over several problems in one call: each problem's prompt is computed once for all its
    children (and what the problems share, once for all), not once per child."""
    from tdrm_search.tasks.lab import generate_problems

    prm = HFPRM(request.getfixturevalue(folder))
    batch = [
        ScoreRequest(p, (first,))
        for p in generate_problems(3, seed=2)
        for first in ("Day 1: 7 + 5 = 12", "Day 1: 7 + 5 = 13", "Day 1: 9 - 2 = 7")
    ]
    out = prm.score(batch)
    trie = {tuple(row.ids[:k]) for r in batch for row in prm.encode(r) for k in range(1, len(row.ids) + 1)}
    assert sum(out.tokens) - sum(out.cached_tokens) == len(trie)
    fresh = HFPRM(request.getfixturevalue(folder), cache_tokens=0).score(batch).scores
    assert [v for s in out.scores for v in s] == pytest.approx([v for s in fresh for v in s], abs=1e-5)


def test_no_verifier_scores_every_step_alike_and_its_weighted_vote_is_the_plain_vote(hf_lab_policy, lab_problems):
    none = load_prm("none", backend="hf")
    out = none.score([ScoreRequest(lab_problems[0], ("a", "b", "c"), start=1)])
    assert out.scores == [[0.5, 0.5]] and out.tokens == [0]
    plain = search_batch(lab_problems, hf_lab_policy, none, "best_of_n", 8, seed=4, selection="majority")
    weighted = search_batch(lab_problems, hf_lab_policy, none, "best_of_n", 8, seed=4, selection="weighted_majority")
    assert [r.answer for r in plain] == [r.answer for r in weighted]
    with pytest.raises(ValueError, match="lie in"):
        ConstantPRM(1.5)
