"""Prompt ids for a question: the tokenizer's chat template when it has one, else a plain template."""

from __future__ import annotations

DEFAULT_TEMPLATE = "Question: {question}\nAnswer: Let's think step by step.\n\n"


def encode_question(tokenizer, question: str, template: str | None = None) -> list[int]:
    if template is None and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
        )
        return tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.encode((template or DEFAULT_TEMPLATE).format(question=question))
