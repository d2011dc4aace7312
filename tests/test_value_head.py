"""The value head (TDRM's scalar PRMs): step values equal a TDRM-style reference computed directly with
transformers, on both backends; prefix reuse computes only a step's new and end-of-turn tokens; training with
every target kind, export and reload; TDRM's doubled-BOS tokenisation; clear errors on mismatched folders."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import CHATML, tdrm_layout_prm
from test_prm_model import lab_rollouts
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from prm_train.export import export_checkpoint
from prm_train.targets import KINDS, TargetSpec
from prm_train.train import TrainConfig, train_prm
from tdrm_search.engine import search
from tdrm_search.loading import LAB_POLICY, load_prm
from tdrm_search.prms.base import ScoreRequest
from tdrm_search.prms.config import PRESETS, PRMConfig
from tdrm_search.prms.encoding import encode_values
from tdrm_search.prms.hf import HFPRM
from tdrm_search.tasks.lab import generate_problems, reference_solution

PROBLEMS = generate_problems(3, seed=5, num_ops=(2, 4))
PATHS = [tuple(reference_solution(p).split("\n\n")) for p in PROBLEMS]
REQUESTS = [ScoreRequest(p, s) for p, s in zip(PROBLEMS, PATHS, strict=True)]


def tdrm_reference(folder, question: str, steps) -> list[float]:
    """What TDRM's scorer computes, one full sequence per prefix: the chat-templated conversation rendered as text,
    tokenised with the tokenizer's defaults, sigmoid of the single logit (HF pools the last non-pad token)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    values = []
    for k in range(1, len(steps) + 1):
        answer = "\n\n".join(s.strip() for s in steps[:k])
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}, {"role": "assistant", "content": answer}], tokenize=False
        )
        with torch.no_grad():
            values.append(torch.sigmoid(model(**tokenizer(text, return_tensors="pt")).logits)[0, 0].item())
    return values


def flat(scores) -> torch.Tensor:
    return torch.tensor([x for s in scores for x in s])


def test_hf_values_equal_tdrm_reference(tdrm_prm_dir):
    prm = HFPRM(tdrm_prm_dir, config=PRESETS["tdrm"])
    reference = [tdrm_reference(tdrm_prm_dir, p.question, s) for p, s in zip(PROBLEMS, PATHS, strict=True)]
    got = prm.score(REQUESTS)  # three paths of different lengths in one padded batch
    torch.testing.assert_close(flat(got.scores), flat(reference), atol=1e-4, rtol=0)
    assert len(set(got.scores[0])) == len(PATHS[0])  # one read per step, not one pooled value
    # scoring from `start` reads the same values, the earlier steps' conversation served from the store
    tail = prm.score([ScoreRequest(p, s, len(s) - 1) for p, s in zip(PROBLEMS, PATHS, strict=True)])
    assert [s[0] for s in tail.scores] == pytest.approx([s[-1] for s in reference], abs=1e-4)
    assert all(c > 0 for c in tail.cached_tokens)


def test_hf_store_computes_only_the_new_step_and_the_end_of_turn(tdrm_prm_dir):
    prm = HFPRM(tdrm_prm_dir, config=PRESETS["tdrm"])
    tokenizer, problem, steps = prm.tokenizer, PROBLEMS[0], PATHS[0]
    prm.score([ScoreRequest(problem, steps[:1])])
    for k in range(1, len(steps)):
        out = prm.score([ScoreRequest(problem, steps[: k + 1], k)])
        new = tokenizer.encode("\n\n" + steps[k].strip(), add_special_tokens=False)
        end_of_turn = tokenizer.encode("<|im_end|>\n", add_special_tokens=False)
        assert out.tokens[0] - out.cached_tokens[0] == len(new) + len(end_of_turn)


@pytest.mark.vllm
def test_vllm_values_equal_hf_and_reference(tdrm_prm_dir, value_prm_dir, vllm_value_prm):
    reference = [tdrm_reference(value_prm_dir, p.question, s) for p, s in zip(PROBLEMS, PATHS, strict=True)]
    out = vllm_value_prm.score(REQUESTS)
    torch.testing.assert_close(flat(out.scores), flat(reference), atol=1e-4, rtol=0)
    hf = HFPRM(value_prm_dir).score(REQUESTS).scores
    torch.testing.assert_close(flat(out.scores), flat(hf), atol=1e-4, rtol=0)


@pytest.mark.vllm
def test_vllm_beam_search_reads_prm_prefixes_from_the_cache(vllm_lab_policy, vllm_value_prm):
    result = search(PROBLEMS[1], vllm_lab_policy, vllm_value_prm, method="beam", n=4, beam_width=2, max_steps=4)
    assert result.stats["prm_calls"] >= 2
    assert 0 < result.stats["prm_cached_tokens"] < result.stats["prm_tokens"]


def test_search_cli_runs_a_value_head_folder(value_prm_dir, tdrm_prm_dir):
    from test_cli import QUESTION, tdrm

    out = tdrm("search", QUESTION, "--prm", str(value_prm_dir), "--backend", "hf", "--method", "beam", "-n", "4")
    assert out.returncode == 0, out.stderr
    assert "best trajectory" in out.stdout
    # a folder TDRM released has no tdrm_prm.json: name the preset
    out = tdrm(
        "search",
        QUESTION,
        "--prm",
        str(tdrm_prm_dir),
        "--prm-config",
        "tdrm",
        "--backend",
        "hf",
        "--method",
        "best_of_n",
        "-n",
        "2",
    )
    assert out.returncode == 0, out.stderr
    out = tdrm("search", QUESTION, "--prm", str(tdrm_prm_dir), "--backend", "hf")
    assert out.returncode == 2 and "--prm-config" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.vllm
def test_search_cli_runs_a_value_head_folder_on_vllm(value_prm_dir):
    from test_cli import QUESTION, tdrm

    out = tdrm(
        "search", QUESTION, "--prm", str(value_prm_dir), "--backend", "vllm", "--method", "beam", "-n", "4", "--json"
    )
    assert out.returncode == 0, out.stderr
    assert '"prm_cached_tokens"' in out.stdout


# MC kinds need completions and tree kinds trees (trained on real trees in test_prm_collect.py)
@pytest.mark.parametrize("kind", [k for k in KINDS if not k.startswith("mc") and not TargetSpec(k).reads_tree])
def test_training_every_target_kind_exports_a_loadable_value_prm(lab_base, tmp_path, kind):
    rollouts = lab_rollouts(16)
    cfg = TrainConfig(TargetSpec(kind), rounds=2, epochs=2, batch_size=4, lr=3e-3)
    result = train_prm(
        lab_base,
        rollouts,
        PRMConfig(head="value", step_join="\n\n"),
        cfg,
        tmp_path / "run",
        progress=False,
        log=lambda s: None,
    )
    # round 1 fits the outcome for every kind (bootstrapped kinds start from V := z); later rounds' targets, and
    # so their loss's floor, differ
    assert result.losses[1] < result.losses[0] and all(map(math.isfinite, result.losses))
    direct = HFPRM(tmp_path / "run").score(REQUESTS).scores
    exported = export_checkpoint(tmp_path / "run", tmp_path / "prm")
    assert HFPRM(exported).score(REQUESTS).scores == direct
    assert load_prm(str(exported), backend="hf").score(REQUESTS).scores == direct
    # plain transformers loads it as TDRM's scorer does, and reads the same values
    reference = [tdrm_reference(exported, p.question, s) for p, s in zip(PROBLEMS, PATHS, strict=True)]
    torch.testing.assert_close(flat(direct), flat(reference), atol=1e-4, rtol=0)


def test_mc_label_kinds_train_a_value_head(lab_base, tmp_path):
    rollouts = lab_rollouts(8)
    for r in rollouts:
        r.mc_success, r.mc_samples = [int(r.outcome) * 2] * (len(r.steps) - 1), 2
    cfg = TrainConfig(TargetSpec("mc_soft"), epochs=3, batch_size=2, lr=3e-3)
    result = train_prm(
        lab_base, rollouts, PRMConfig(head="value", step_join="\n\n"), cfg, tmp_path, progress=False, log=lambda s: None
    )
    assert result.losses[-1] < result.losses[0]


def test_tokenisation_is_tdrm_trainers_even_with_a_doubled_bos(tmp_path):
    """A template that writes BOS itself, and a tokenizer that adds one: TDRM's trainer fed both, so do we."""
    from tokenizers.processors import TemplateProcessing

    folder = tdrm_layout_prm(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_special_tokens({"bos_token": "<s>"})
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)]
    )
    tokenizer.chat_template = "{{ bos_token }}" + CHATML
    question, steps = PROBLEMS[0].question, PATHS[0]
    for k, row in enumerate(encode_values(tokenizer, PRESETS["tdrm"], question, steps)):
        text = tokenizer.apply_chat_template(
            [
                {"role": "user", "content": question},
                {"role": "assistant", "content": "\n\n".join(s.strip() for s in steps[: k + 1])},
            ],
            tokenize=False,
        )
        assert row.ids == tokenizer(text)["input_ids"] and row.ends == [len(row.ids) - 1]
        assert row.ids[:2] == [tokenizer.bos_token_id] * 2


def test_mismatched_folders_get_clear_errors(tmp_path, tdrm_prm_dir, random_prm_dir):
    two_labels = tdrm_layout_prm(tmp_path / "two", num_labels=2)
    with pytest.raises(ValueError, match=f"{two_labels}.*num_labels=1.*num_labels=2"):
        HFPRM(two_labels, config=PRESETS["tdrm"])
    with pytest.raises(ValueError, match=f"{random_prm_dir}.*ForSequenceClassification"):
        HFPRM(random_prm_dir, config=PRESETS["tdrm"])  # a causal LM
    no_template = tdrm_layout_prm(tmp_path / "plain")
    tokenizer = AutoTokenizer.from_pretrained(no_template)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(no_template)
    (no_template / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ValueError, match=f"{no_template}.*no(ne)? chat template|{no_template}.*has none"):
        HFPRM(no_template, config=PRESETS["tdrm"])
    user_only = AutoTokenizer.from_pretrained(tdrm_prm_dir)
    user_only.chat_template = "{% for m in messages %}{{ m['content'] if m['role'] == 'user' }}{% endfor %}"
    model = AutoModelForSequenceClassification.from_pretrained(tdrm_prm_dir)
    with pytest.raises(ValueError, match="assistant"):
        HFPRM(model, user_only, PRESETS["tdrm"])


def test_value_config_ignores_tag_fields_and_round_trips(tmp_path):
    config = PRMConfig(head="value")
    assert (config.step_tag, config.good_token, config.bad_token) == ("", None, None)
    PRESETS["tdrm"].save(tmp_path)
    assert PRMConfig.load(tmp_path) == PRESETS["tdrm"]
    # a plain template (an outcome RM over plain text): the conversation is the template, then the steps
    tokenizer = AutoTokenizer.from_pretrained(LAB_POLICY)
    rows = encode_values(tokenizer, PRMConfig(head="value", prompt_template="Q: {question}\n"), "2+3?", ("a", "b"))
    assert [row.ids for row in rows] == [tokenizer("Q: 2+3?\na")["input_ids"], tokenizer("Q: 2+3?\nab")["input_ids"]]


def test_tdrm_style_baseline_scores_the_same_and_computes_every_full_sequence(tdrm_prm_dir):
    from tdrm_search.baselines.full_sequence_prm import FullSequencePRM

    prm = HFPRM(tdrm_prm_dir, config=PRESETS["tdrm"])
    baseline = FullSequencePRM(HFPRM(tdrm_prm_dir, config=PRESETS["tdrm"], cache_tokens=0))
    requests = [ScoreRequest(p, s, len(s) - 2) for p, s in zip(PROBLEMS, PATHS, strict=True)]
    ours, theirs = prm.score(requests), baseline.score(requests)
    torch.testing.assert_close(flat(theirs.scores), flat(ours.scores), atol=1e-5, rtol=0)
    full = [
        sum(len(row.ids) for row in encode_values(prm.tokenizer, prm.config, r.problem.question, r.steps, r.start))
        for r in requests
    ]
    assert theirs.tokens == full == ours.tokens and theirs.cached_tokens == [0, 0, 0]


def test_packed_training_rows_read_what_the_engine_reads(lab_base):
    """One packed row per rollout (the shared conversation once, each step's end-of-turn as its own tail) gives the
    logits of T separate sequences: the trainer's sigmoid equals HFPRM's values, alone or in a padded batch."""
    from prm_train.evaluate import score_rollouts
    from prm_train.model import check_tokenizer, encode_rollouts, load_backbone, read_logits

    config = PRMConfig(head="value", step_join="\n\n")
    model, tokenizer = load_backbone(lab_base, config)
    model.eval()
    rollouts = lab_rollouts(5)
    packed = encode_rollouts(tokenizer, config, rollouts, 512)
    separate = [encode_values(tokenizer, config, r.problem.question, r.steps) for r in rollouts]
    for p, rows in zip(
        packed, separate, strict=True
    ):  # the longest shared conversation once, then each sequence's own tail
        assert len(p.ids) == max(s.shared for s in rows) + sum(len(s.ids) - s.shared for s in rows)
    readout = check_tokenizer(model, tokenizer, config)
    with torch.no_grad():
        batched = read_logits(model, packed, readout, tokenizer.pad_token_id)
        alone = torch.cat([read_logits(model, [p], readout, tokenizer.pad_token_id) for p in packed])
    engine = flat(score_rollouts(HFPRM(model, tokenizer, config), rollouts))
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.sigmoid(batched), engine, atol=1e-5, rtol=0)
