"""When a solution ends: the one set of end-of-solution rules search applies to every new step."""

from __future__ import annotations

from tdrm_search.extraction import ENGINE_POLICY, extract_answer


def ending(step: str, finish: str, tokens_left: int, depth: int, max_steps: int) -> str | None:
    """Why the path ends at this step, or None when it goes on. In order: the step states an answer ("answer",
    under the engine's strict extraction), the model stopped ("eos"), the token budget ran out ("length"), or the
    path has `max_steps` steps."""
    if extract_answer(step) is not None:
        return "answer"
    if finish == "eos":
        return "eos"
    if finish == "length" or tokens_left <= 0:
        return "length"
    if depth >= max_steps:
        return "max_steps"
    return None


def final_answer(step: str, solution: str, policy: str = ENGINE_POLICY) -> str | None:
    """The answer a finished path gives under extraction `policy`: the one its last step states, else the last one
    anywhere in it."""
    answer = extract_answer(step, policy)
    return answer if answer is not None else extract_answer(solution, policy)
