"""verl adapters: `compute_score` called with verl's keyword signature, and the token-level reward manager.

verl cannot be installed on this CPU machine (it needs CUDA builds, Ray and flash-attention), so the manager is
exercised with `StandInDataProto`, a minimal stand-in object that has the attributes verl's `DataProto` gives a
reward manager: `batch` (tensors "prompts" [B, P] left-padded, "responses" [B, R] right-padded,
"attention_mask" [B, P + R]), `non_tensor_batch` (numpy object arrays "reward_model", "data_source",
"extra_info") and `len()`. A character-level tokenizer stands in for the policy's.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from rl_bridge.reward import RewardConfig, RewardFunction
from rl_bridge.verl import TDRMRewardManager, compute_score
from tdrm_search.prms.oracle import OraclePRM
from tdrm_search.tasks.lab import generate_problems, reference_solution

PAD = 0


class CharTokenizer:
    """One token per character (id = code point); 0 is padding, 1 is EOS."""

    eos_token = "<eos>"

    @staticmethod
    def encode(text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        specials = {0: "", 1: "" if skip_special_tokens else self.eos_token}
        return "".join(specials.get(i, chr(i)) for i in ids)


@dataclass
class StandInDataProto:
    batch: dict[str, torch.Tensor]
    non_tensor_batch: dict[str, np.ndarray]

    def __len__(self) -> int:
        return self.batch["responses"].shape[0]


def make_batch(tok: CharTokenizer, prompts: list[str], responses: list[str], rows: list[dict]) -> StandInDataProto:
    P = max(len(p) for p in prompts)
    R = max(len(r) for r in responses) + 4  # room for padding
    prompt_ids = torch.full((len(prompts), P), PAD)
    response_ids = torch.full((len(prompts), R), PAD)
    mask = torch.zeros((len(prompts), P + R), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        p_ids, r_ids = tok.encode(p), tok.encode(r) + [1]  # responses end with EOS
        prompt_ids[i, P - len(p_ids) :] = torch.tensor(p_ids)
        response_ids[i, : len(r_ids)] = torch.tensor(r_ids)
        mask[i, P - len(p_ids) : P] = 1
        mask[i, P : P + len(r_ids)] = 1
    objects = lambda values: np.array(values + [None], dtype=object)[:-1]  # noqa: E731 (a 1-d object array of dicts)
    return StandInDataProto(
        batch={"prompts": prompt_ids, "responses": response_ids, "attention_mask": mask},
        non_tensor_batch={
            "data_source": objects(["lab"] * len(rows)),
            "reward_model": objects([{"ground_truth": r["answer"], "style": "rule"} for r in rows]),
            "extra_info": objects([{"question": r["question"], "meta": r["meta"]} for r in rows]),
        },
    )


@pytest.fixture(scope="module")
def lab_batch():
    problems = generate_problems(3, seed=11)
    responses = [reference_solution(problems[0]), "3 + 4 = 7\n\nThe answer is 7.", ""]
    prompts = [f"Q: {p.question}\nA:\n" for p in problems]
    return problems, responses, make_batch(CharTokenizer(), prompts, responses, [p.to_dict() for p in problems])


def test_compute_score_has_verls_signature_and_returns_score_dict():
    params = inspect.signature(compute_score).parameters
    assert list(params)[:4] == ["data_source", "solution_str", "ground_truth", "extra_info"]
    p = generate_problems(1, seed=2)[0]
    # verl calls it with keywords, its reward_kwargs appended
    out = compute_score(
        data_source="lab",
        solution_str=reference_solution(p),
        ground_truth=p.answer,
        extra_info={"question": p.question, "meta": p.meta},
        mode="mix",
        prm="oracle",
    )
    assert out == {"score": pytest.approx(1.0), "acc": 1.0, "prm": 1.0}
    rule = compute_score("lab", "The answer is 0.", p.answer, mode="rule")
    assert rule["score"] == 0.0 and rule["prm"] == -1.0
    assert compute_score("lab", "The answer is 0.", None, mode="rule")["score"] == 0.0  # no reference: neutral


def test_manager_writes_step_rewards_at_step_end_tokens(lab_batch):
    problems, responses, data = lab_batch
    fn = RewardFunction(RewardConfig(mode="clip", eta=0.5), OraclePRM())
    manager = TDRMRewardManager(CharTokenizer(), num_examine=0, compute_score=None, reward_fn=fn)
    result = manager(data, return_dict=True)
    scores = result["reward_tensor"]
    assert scores.shape == data.batch["responses"].shape and scores.dtype == torch.float32
    # correct solution: clipped process rewards all 0, success reward 1 at the last response token (EOS)
    correct = responses[0]
    assert scores[0].nonzero().flatten().tolist() == [len(correct)]
    assert scores[0, len(correct)].item() == 1.0
    # wrong solution: two steps each worth min(0 - 0.5, 0) at the token ending the step, success 0
    wrong = responses[1]
    first_end = wrong.index("\n\n") + 1
    assert scores[1, first_end].item() == pytest.approx(-0.5)
    assert scores[1, len(wrong)].item() == pytest.approx(-0.5)
    assert scores[1].sum().item() == pytest.approx(-1.0)
    # empty response: a failed answer, reward 0 at its only (EOS) token
    assert scores[2].abs().sum().item() == 0.0
    assert result["reward_extra_info"]["acc"] == [1.0, 0.0, 0.0]
    assert all(len(v) == 3 for v in result["reward_extra_info"].values())


def test_manager_delta_sums_telescope_per_row(lab_batch):
    """Built the way verl's loader builds it: reward_kwargs plus version-specific extras it does not use."""
    _, _, data = lab_batch
    manager = TDRMRewardManager(
        tokenizer=CharTokenizer(),
        num_examine=1,
        compute_score=print,
        reward_fn_key="data_source",
        max_resp_len=64,
        overlong_buffer_cfg=None,
        mode="delta",
        prm="oracle",
    )
    scores = manager(data)
    assert isinstance(scores, torch.Tensor)
    assert scores.sum(-1).tolist() == pytest.approx([2.0, 0.0, 0.0])  # success + first step's value


def test_manager_gives_neutral_rewards_when_the_prm_returns_nan(lab_batch):
    class NaNPRM:
        def score(self, requests):
            from tdrm_search.prms.base import ScoreOutput

            return ScoreOutput([[math.nan] * len(r.steps) for r in requests], [0] * len(requests), [0] * len(requests))

    _, _, data = lab_batch
    result = TDRMRewardManager(CharTokenizer(), reward_fn=RewardFunction(RewardConfig(mode="mix"), NaNPRM()))(
        data, return_dict=True
    )
    assert result["reward_tensor"].abs().sum().item() == 0.0
    assert result["reward_extra_info"]["abstain"] == [1.0, 1.0, 0.0]  # the empty response needs no PRM
