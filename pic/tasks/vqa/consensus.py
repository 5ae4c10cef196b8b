"""Answering questions by consensus: the language model proposes (it sees only the question), the CLIP-style
scorers judge the statements its answers make about the image, and the decoder refines token by token
(pic.optim.token_consensus); the answer-level rerank and the language model alone are the baselines.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

import torch

from pic.energy import ComposedEnergy, FunctionScorer
from pic.tasks.vqa.frame_scorer import PAPER_CLIPS, FrameTextScorer
from pic.models.hub import HubUnavailableError
from pic.lm.load import PAPER_LM
from pic.optim.token_consensus import ConsensusConfig, consensus_decode
from pic.lm import PromptedLM
from pic.optim import select_argmin
from pic.tasks.vqa.data import Question, map_answer, statement

# Few-shot examples that show the answer format (one word) without naming any easy-VQA colour or shape.
FEW_SHOT = (("what animal is on the sofa?", "cat"), ("is the door open?", "no"), ("what color is the car?", "white"),
            ("what shape is the stop sign?", "octagon"), ("is there a dog in the picture?", "yes"),
            ("what is the man holding?", "umbrella"))


def shared_prefix() -> str:
    return "".join(f"Q: {q}\nA: {a}\n" for q, a in FEW_SHOT)


def question_prompt(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"a question must be a non-empty string, got {question!r}")
    return f"Q: {question.strip()}\nA:"


def prompted_lm(model, tokenizer) -> PromptedLM:
    """The generator: the language model with the few-shot prefix, prompted with the question only."""
    return PromptedLM(model, tokenizer, shared_prefix(), question_prompt)


@torch.no_grad()
def question_video_embeddings(scorers: Sequence[FrameTextScorer], frames: torch.Tensor,
                              video_of_question: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each scorer's unit video embeddings [Q, D] per question, its videos (frames [V, F, C, H, W]) embedded once."""
    return {s.name: s.embed_videos(frames)[video_of_question] for s in scorers}


def scorer_subsets(names: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of the scorers, singles first, then pairs, ..., then all."""
    return [c for r in range(1, len(names) + 1) for c in combinations(names, r)]


def row_name(subset: Sequence[str]) -> str:
    return "LM alone" if not subset else "LM + " + " + ".join(subset)


@dataclass
class Answers:
    texts: list[str]  # what was generated
    predictions: list[str | None]  # mapped onto the vocabulary; None: not expressible, counted wrong


def answer_by_consensus(lm: PromptedLM, questions: Sequence[Question], energy: ComposedEnergy | None,
                        video_embeddings: dict[str, torch.Tensor], vocabulary: Sequence[str],
                        config: ConsensusConfig, trace_rows: Sequence[int] = ()):
    """Token-level consensus decoding of every question (energy None: the language model alone)."""
    texts = [q.text for q in questions]
    result = consensus_decode(lm, texts, lambda b, partial: statement(texts[b], partial), energy, config,
                              trace_rows=trace_rows, video_embeddings=video_embeddings)
    return Answers(result.texts, [map_answer(t, vocabulary) for t in result.texts]), result


def propose_answers(lm: PromptedLM, questions: Sequence[Question], n: int, config: ConsensusConfig):
    """The language model's n likeliest first tokens per question, each completed greedily: ([Q][n] answer texts,
    [Q, n] log-probabilities of those answers)."""
    if n > config.top_k:
        raise ValueError(f"n={n} answers need top_k >= n, got top_k={config.top_k}")
    prompts = [lm.prompt_ids(q.text) for q in questions]
    log_p, first = lm.top_k(prompts, [len(p) for p in prompts], config.top_k)
    rows = [(b, [int(first[b, j])], float(log_p[b, j])) for b in range(len(questions)) for j in range(n)]
    done = [lm.ends_answer(t[0]) for _, t, _ in rows]
    for _ in range(config.max_new_tokens - 1):
        todo = [i for i, d in enumerate(done) if not d]
        if not todo:
            break
        seqs = [prompts[rows[i][0]] + tuple(rows[i][1]) for i in todo]
        lp, ids = lm.top_k(seqs, [len(prompts[rows[i][0]]) for i in todo], config.top_k)  # same k: shared memo
        for i, token, logp in zip(todo, ids[:, 0].tolist(), lp[:, 0].tolist()):
            b, tokens, total = rows[i]
            if lm.ends_answer(token):
                done[i] = True
                rows[i] = (b, tokens, total + logp)  # the answer's probability includes ending there
            else:
                rows[i] = (b, tokens + [token], total + logp)
    texts = [[lm.decode_tokens(rows[b * n + j][1]).strip() for j in range(n)] for b in range(len(questions))]
    return texts, torch.tensor([[rows[b * n + j][2] for j in range(n)] for b in range(len(questions))])


def answer_by_rerank(candidates: list[list[str]], log_p: torch.Tensor, questions: Sequence[Question],
                     energy: ComposedEnergy, video_embeddings: dict[str, torch.Tensor],
                     vocabulary: Sequence[str], lm_weight: float = 1.0) -> Answers:
    """Answer-level rerank: per question, the candidate answer of least E = sum_n E_n(statement) - w log p_LM."""
    lm_term = FunctionScorer(lambda x, answer_log_p=None, **_: -answer_log_p, "lm", differentiable=False)
    full = ComposedEnergy(energy.terms + [(lm_term, lm_weight)])
    texts = []
    for b, (q, cands) in enumerate(zip(questions, candidates)):
        statements = [statement(q.text, c) for c in cands]
        pick = select_argmin(statements, full, question_index=torch.full((len(cands),), b),
                             video_embeddings=video_embeddings, answer_log_p=log_p[b])
        texts.append(cands[pick.index])
    return Answers(texts, [map_answer(t, vocabulary) for t in texts])


def load_paper_models(lm_id: str = PAPER_LM, clip_ids: Sequence[str] = PAPER_CLIPS):
    """The paper's generator and scorers by hub id: (model, tokenizer, [FrameTextScorer]). Offline, it stops at
    once with one message naming every id it needs."""
    from pic.tasks.vqa.frame_scorer import load_paper_clip
    from pic.lm import load_causal_lm

    try:
        model, tokenizer = load_causal_lm("paper", paper_id=lm_id)
        scorers = [load_paper_clip(i) for i in clip_ids]
    except HubUnavailableError as err:
        raise HubUnavailableError(f"the `paper` profile of Table 2 needs the hub models {[lm_id, *clip_ids]}; "
                                  f"{err}") from err
    return model, tokenizer, scorers


def answer_all_rows(lm: PromptedLM, questions: Sequence[Question], scorers: Sequence[FrameTextScorer],
                    video_embeddings: dict[str, torch.Tensor], vocabulary: Sequence[str], config: ConsensusConfig,
                    n_rerank: int, sharpened: float | None = None) -> dict[str, Answers]:
    """Table 2's zero-shot rows: the language model alone; token-level consensus with every non-empty subset of
    the scorers; each single scorer with its weight multiplied by `sharpened` (a control: as sharp a target as
    the ensemble's, from one scorer); and the answer-level rerank with all scorers."""
    energy = ComposedEnergy(list(scorers))
    names = [s.name for s in scorers]
    rows = {"LM alone": answer_by_consensus(lm, questions, None, video_embeddings, vocabulary, config)[0]}
    for subset in scorer_subsets(names):
        rows[row_name(subset)] = answer_by_consensus(lm, questions, energy.subset(subset), video_embeddings,
                                                     vocabulary, config)[0]
    if sharpened:
        for s in scorers:
            rows[f"LM + {s.name} (weight {sharpened:g})"] = answer_by_consensus(
                lm, questions, ComposedEnergy([(s, sharpened)]), video_embeddings, vocabulary, config)[0]
    candidates, log_p = propose_answers(lm, questions, n_rerank, config)
    rows["answer-level rerank, all scorers"] = answer_by_rerank(candidates, log_p, questions, energy,
                                                                 video_embeddings, vocabulary)
    return rows
