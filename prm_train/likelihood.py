"""What a backbone already knows: a causal LM's own likelihood of each step as a value, with no PRM training.

V(s_t) = exp(min over the tokens of steps 0..t of log P(token | everything before it)): the least likely token so
far, so one improbable token (a wrong operand) lowers every later value, an early error is carried forward. It is the
reference a PRM fine-tuned from that backbone should beat: if it does not, the fine-tuning loses what the backbone
knew (`benchmarks/prm_lab.py` reports both).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from prm_train.data import Rollout


def step_spans(tokenizer, rollout: Rollout) -> tuple[list[int], list[tuple[int, int]]]:
    """The prompt (chat template) plus every step's ids, and each step's [start, end) token span."""
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": rollout.problem.question}], add_generation_prompt=True, tokenize=False
    )
    ids, spans = tokenizer(prompt, add_special_tokens=False)["input_ids"], []
    for step in rollout.steps:
        step_ids = tokenizer(step, add_special_tokens=False)["input_ids"]
        spans.append((len(ids), len(ids) + len(step_ids)))
        ids = ids + step_ids
    return ids, spans


@torch.inference_mode()
def likelihood_values(model, tokenizer, rollouts: Sequence[Rollout], batch_size: int = 64) -> list[list[float]]:
    """Every step value of every rollout under `model` (a causal LM), in padded batches."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    values: list[list[float]] = []
    for c in range(0, len(rollouts), batch_size):
        encoded = [step_spans(tokenizer, r) for r in rollouts[c : c + batch_size]]
        width = max(len(ids) for ids, _ in encoded)
        x = torch.full((len(encoded), width), pad)
        mask = torch.zeros_like(x)
        for i, (ids, _) in enumerate(encoded):
            x[i, : len(ids)], mask[i, : len(ids)] = torch.tensor(ids), 1
        logprobs = torch.log_softmax(model(input_ids=x, attention_mask=mask).logits.float(), -1)
        token_lp = logprobs[:, :-1].gather(-1, x[:, 1:, None])[..., 0]  # position j: log P(token j + 1)
        for i, (_, spans) in enumerate(encoded):
            running, row = 0.0, []
            for start, end in spans:
                if end > start:
                    running = min(running, token_lp[i, start - 1 : end - 1].min().item())
                row.append(float(torch.tensor(running).exp()))
            values.append(row)
    return values
