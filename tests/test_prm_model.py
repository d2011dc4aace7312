"""The PRM model and trainer on the lab tokenizer with a tiny real backbone: read-out equals the engine's,
padding/truncation invariance, loss falls, seeded and resumable training, clear errors on bad input."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_qwen2
from transformers import AutoTokenizer

from prm_train.data import Rollout
from prm_train.evaluate import score_rollouts
from prm_train.model import check_tokenizer, encode_rollouts, read_logits, rollout_values
from prm_train.objective import round_targets
from prm_train.targets import TargetSpec
from prm_train.train import TrainConfig, fit
from tdrm_search.loading import LAB_POLICY
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.hf import HFPRM
from tdrm_search.tasks.lab import generate_problems, grade, reference_solution, step_labels

POLICY = LAB_POLICY
CONFIG = PRMConfig(step_join="\n\n")


def lab_rollouts(n: int, seed: int = 11) -> list[Rollout]:
    """Reference solutions, and the same with one step's result off by one from step `i % T` on."""
    out = []
    for i, p in enumerate(generate_problems(n, seed=seed, num_ops=(1, 4))):
        steps = reference_solution(p).split("\n\n")
        if i % 2:
            j = i % len(steps)
            steps[j] = steps[j].replace("= ", "= 1", 1) if j < len(steps) - 1 else "The answer is 0."
        out.append(Rollout(p, steps, [len(s) for s in steps], grade(p, steps[-1]), labels=step_labels(p, steps)))
    return out


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(POLICY)


@pytest.fixture
def model(tokenizer):
    return tiny_qwen2(len(tokenizer), seed=0)


def test_scores_are_the_same_alone_and_in_a_padded_batch(model, tokenizer):
    rollouts = lab_rollouts(6)
    paths = encode_rollouts(tokenizer, CONFIG, rollouts, 512)
    assert len({len(p.ids) for p in paths}) > 1  # rows of different lengths: real padding
    readout = check_tokenizer(model, tokenizer, CONFIG)
    model.eval()
    with torch.no_grad():
        batched = read_logits(model, paths, readout, tokenizer.pad_token_id)
        alone = torch.cat([read_logits(model, [p], readout, tokenizer.pad_token_id) for p in paths])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)
    # the trainer's logit is the engine's read-out: sigmoid(logit) == HFPRM's value at the same tags
    engine = torch.tensor([x for v in score_rollouts(HFPRM(model, tokenizer, CONFIG), rollouts) for x in v])
    torch.testing.assert_close(torch.sigmoid(batched), engine, atol=1e-5, rtol=0)
    inference = rollout_values(model, paths, rollouts, readout, tokenizer.pad_token_id, batch_size=4)
    torch.testing.assert_close(torch.tensor([x for v in inference for x in v]), engine, atol=1e-5, rtol=0)


def test_padding_tokens_are_never_read(model, tokenizer):
    """Changing what fills the padding (and the pad id) leaves every score unchanged."""
    paths = encode_rollouts(tokenizer, CONFIG, lab_rollouts(4), 512)
    readout = check_tokenizer(model, tokenizer, CONFIG)
    with torch.no_grad():
        a = read_logits(model.eval(), paths, readout, pad=tokenizer.pad_token_id)
        b = read_logits(model, paths, readout, pad=readout.good)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_truncated_steps_lose_their_targets(model, tokenizer):
    rollouts = lab_rollouts(2)
    full = encode_rollouts(tokenizer, CONFIG, rollouts, 512)
    cut_at = full[0].ends[1] + 1  # room for steps 0 and 1 only
    paths = encode_rollouts(tokenizer, CONFIG, rollouts, cut_at)
    assert paths[0].ends == full[0].ends[:2]
    readout = check_tokenizer(model, tokenizer, CONFIG)
    targets = round_targets(model, rollouts, paths, readout, tokenizer.pad_token_id, TargetSpec("td_lambda"), 1)
    assert [len(t) for t in targets] == [len(p.ends) for p in paths]


def train(tokenizer, run_dir=None, resume=False, **kw):
    model = tiny_qwen2(len(tokenizer), seed=0)
    cfg = TrainConfig(
        **{
            **dict(
                targets=TargetSpec("td_lambda", gamma=0.9, lam=0.7), rounds=2, epochs=2, batch_size=8, lr=3e-3, seed=1
            ),
            **kw,
        }
    )
    result = fit(model, tokenizer, CONFIG, lab_rollouts(24), cfg, run_dir, resume, progress=False, log=lambda s: None)
    return model, result


def test_loss_falls_and_training_is_seeded(tokenizer):
    model_a, result = train(tokenizer)
    assert result.losses[-1] < result.losses[0]
    model_b, _ = train(tokenizer)
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_resumed_training_ends_where_an_uninterrupted_run_does(tokenizer, tmp_path):
    whole, _ = train(tokenizer)
    train(tokenizer, run_dir=tmp_path, rounds=1)  # "interrupted" after round 1 ...
    with pytest.raises(ValueError, match="different training config"):
        train(tokenizer, run_dir=tmp_path, resume=True)
    # ... resumed: the checkpoint carries round, epoch, optimizer state and the round's targets
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    ckpt["config"]["rounds"] = 2
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    resumed, result = train(tokenizer, run_dir=tmp_path, resume=True)
    assert len(result.losses) == 4
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_bad_input_gets_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="mismatched tokenizer"):
        check_tokenizer(tiny_qwen2(20), tokenizer, CONFIG)
    with pytest.raises(ValueError, match="step_tag .* must be exactly one"):
        check_tokenizer(tiny_qwen2(len(tokenizer)), tokenizer, PRMConfig(step_tag="<step>"))
    with pytest.raises(ValueError, match="no rollouts"):
        fit(tiny_qwen2(len(tokenizer)), tokenizer, CONFIG, [], TrainConfig(), progress=False)
    with pytest.raises(ValueError, match="MC completions"):
        train(tokenizer, targets=TargetSpec("mc_soft"))
