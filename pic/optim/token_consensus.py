"""Token-level iterative consensus (ZeroCap-style) between a causal language model and statement scorers.

At every answer position the language model proposes its top-k next tokens; each candidate, appended to the
answer so far, is turned into a statement and scored by every scorer n (CLIP-style, against the image). Each
scorer's preference over the candidates, t_n = softmax(-E_n / temperature), is pulled into the model's
next-token distribution q by a few normalised gradient steps on the summed ZeroCap losses (PIC: "the gradient
of the summed CLIP losses"), balanced by a fluency term that keeps q near the model's own distribution:

    loss(delta) = sum_n w_n CE(t_n, q) + fluency * KL(q || p_LM),   q = softmax(log p_LM + delta)

ZeroCap takes these steps on the model's key/value context (`variant="kv"` below, a gradient through the whole
network per step); the default `variant="logits"` takes them on an offset added to the next-token logits, which
needs no backward pass through the network, so the language model's proposals can be memoised per prefix and
shared by every scorer combination. The final distribution fuses the refined and the original one,
q^fusion * p_LM^(1 - fusion), and its best candidate is appended. Only the top-k candidates and the rest of the
vocabulary as one bucket enter the loss; with the offset constant on that bucket the bucketed KL equals the
full-vocabulary one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import torch

from pic.energy import ComposedEnergy, Energies

StatementFn = Callable[[int, str], str]  # (question row, answer text so far) -> the statement the scorers judge


@dataclass(frozen=True)
class ConsensusConfig:
    """Decoding settings; ZeroCap's public defaults are 5 iterations, step 0.3, fluency 0.2, fusion 0.99."""

    top_k: int = 32
    iterations: int = 5
    step_size: float = 0.3
    fluency: float = 0.2
    fusion: float = 0.99
    temperature: float = 1.0  # of the scorers' softmax over candidates; our energies carry a learned scale
    max_new_tokens: int = 4
    variant: str = "logits"  # "logits": offset on the next-token logits; "kv": shift of the key/value context

    def __post_init__(self):
        if self.variant not in ("logits", "kv"):
            raise ValueError(f"variant must be 'logits' or 'kv', got {self.variant!r}")
        if self.top_k < 1 or self.iterations < 0 or self.max_new_tokens < 1:
            raise ValueError(f"need top_k >= 1, iterations >= 0, max_new_tokens >= 1, got {self}")


@dataclass
class DecodeResult:
    texts: list[str]  # the generated answer of each question
    tokens: list[list[int]]
    trace: list[dict] = field(default_factory=list)  # per position: candidates, p_LM, target, q per iteration


class Proposer(Protocol):
    """What token-level consensus needs of a generator (pic.lm.PromptedLM implements it for causal LMs).

    Sequences are token-id tuples: a question's prompt followed by the tokens generated so far.
    """

    def prompt_ids(self, question: str) -> tuple[int, ...]: ...

    def top_k(self, sequences: Sequence[tuple[int, ...]], prompt_lengths: Sequence[int],
              k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probs [N, k], token ids [N, k]) of the k likeliest next tokens, best first."""

    def decode_tokens(self, ids: Sequence[int]) -> str: ...

    def ends_answer(self, token_id: int) -> bool: ...

    # the key/value variant only: next-token logits with a shift of the cached context, and that context's cache
    def logits(self, sequences, prompt_lengths, shift=None) -> torch.Tensor: ...

    def context_cache(self, contexts: Sequence[tuple[int, ...]]): ...


def scorer_targets(energies: Energies, shape: tuple[int, int], temperature: float) -> torch.Tensor:
    """sum_n w_n softmax(-E_n / temperature) over each question's candidates, [B, k]: the cross-entropy against
    it is the weighted sum of every scorer's ZeroCap loss (the paper: "the gradient of the summed CLIP losses")."""
    return sum(energies.weights[name] * torch.softmax(-e.view(shape).float() / temperature, dim=-1)
               for name, e in energies.terms.items())


def refine_distribution(log_p: torch.Tensor, target: torch.Tensor | None, config: ConsensusConfig,
                        trace: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The logit-offset refinement of one position, batched over questions.

    log_p [B, k]: the model's log-probs of its top-k candidates (the rest of the vocabulary is one more bucket);
    target [B, k]: the scorers' (summed, weighted) preference over the candidates (None: the model alone).
    Returns the fused log-scores [B, k] to pick from, and (when tracing) q over the k candidates per iteration.
    """
    rest = torch.log1p(-log_p.exp().sum(-1, keepdim=True).clamp(max=1 - 1e-6))
    lm = torch.cat([log_p, rest], dim=-1)  # [B, k + 1]
    history = [lm[:, :-1].exp()] if trace else []
    if target is None:
        return log_p, history
    target = torch.cat([target, torch.zeros_like(rest)], dim=-1)
    delta = torch.zeros_like(lm, requires_grad=True)
    for _ in range(config.iterations):
        with torch.enable_grad():
            log_q = torch.log_softmax(lm + delta, dim=-1)
            loss = _zerocap_loss(log_q, lm, target, config.fluency)
            (grad,) = torch.autograd.grad(loss.sum(), delta)
        with torch.no_grad():  # ZeroCap's normalised step
            delta -= config.step_size * grad / (grad.norm(dim=-1, keepdim=True) + 1e-15)
        if trace:
            history.append(torch.softmax(lm + delta.detach(), dim=-1)[:, :-1])
    log_q = torch.log_softmax(lm + delta.detach(), dim=-1)
    fused = config.fusion * log_q + (1 - config.fusion) * lm
    return fused[:, :-1], history


def _zerocap_loss(log_q, lm, target, fluency):
    """CE(scorers' target, q) + fluency * KL(q || p_LM), per question (target: the weighted sum of the scorers')."""
    q = log_q.exp()
    return -(target * log_q).sum(-1) + fluency * (q * (log_q - lm)).sum(-1)


def consensus_decode(lm: Proposer, questions: Sequence[str], statement_fn: StatementFn,
                     energy: ComposedEnergy | None, config: ConsensusConfig = ConsensusConfig(),
                     trace_rows: Sequence[int] = (), **context) -> DecodeResult:
    """Answer every question, all at once: per position, propose top-k, score statements, refine, append.

    energy: the composed scorers (None: the language model alone, greedy). Each scorer gets the statements of
    the unfinished questions, `question_index` (their rows in `questions`) and `**context` (video embeddings).
    trace_rows: questions whose candidates and distributions per iteration are recorded (for figures).
    """
    if not questions:
        raise ValueError("no questions to answer")
    prompts = [lm.prompt_ids(q) for q in questions]
    generated: list[list[int]] = [[] for _ in questions]
    active = list(range(len(questions)))
    trace = []
    for position in range(config.max_new_tokens):
        if not active:
            break
        sequences = [prompts[b] + tuple(generated[b]) for b in active]
        lengths = [len(prompts[b]) for b in active]
        log_p, ids = lm.top_k(sequences, lengths, config.top_k)
        target = None
        if energy is not None:
            statements = [statement_fn(b, lm.decode_tokens(generated[b] + [int(t)]))
                          for b, row in zip(active, ids) for t in row]
            index = torch.tensor(active).repeat_interleave(config.top_k)
            energies = energy(statements, question_index=index, **context)
            target = scorer_targets(energies, tuple(ids.shape), config.temperature)
        traced = [i for i, b in enumerate(active) if b in trace_rows]
        if config.variant == "kv" and energy is not None:
            scores, history = _refine_by_context(lm, sequences, lengths, ids, target, config, bool(traced))
        else:
            scores, history = refine_distribution(log_p, target, config, trace=bool(traced))
        choice = ids.gather(1, scores.argmax(-1, keepdim=True)).squeeze(1).tolist()
        for i in traced:
            trace.append({"row": active[i], "position": position, "candidates": ids[i].tolist(),
                          "p_lm": log_p[i].exp(), "target": None if target is None else target[i] / target[i].sum(),
                          "q": [h[i] for h in history], "chosen": choice[i]})
        still = []
        for b, token in zip(active, choice):
            if lm.ends_answer(token):
                continue
            generated[b].append(token)
            still.append(b)
        active = still
    return DecodeResult([lm.decode_tokens(g).strip() for g in generated], generated, trace)


def _refine_by_context(lm: Proposer, sequences, lengths, ids, target, config: ConsensusConfig, trace: bool):
    """ZeroCap's own variant: gradient steps on a shift of the cached keys and values (prefix + prompt), per
    question. Each step runs the network forward and backward; the candidates stay the model's original top-k.
    """
    with torch.no_grad():
        lm0 = torch.log_softmax(lm.logits(sequences, lengths), dim=-1)
    cache = lm.context_cache([s[:n - 1] for s, n in zip(sequences, lengths)])
    if cache is None:
        raise ValueError("the kv variant shifts the key/value context, and these prompts have none")
    target = torch.zeros_like(lm0).scatter(1, ids, target)
    shift = [(torch.zeros_like(k, requires_grad=True), torch.zeros_like(v, requires_grad=True))
             for k, v, *_ in cache]
    flat = [t for pair in shift for t in pair]
    history = [lm0.gather(1, ids).exp()] if trace else []
    log_q = lm0
    for _ in range(config.iterations):
        with torch.enable_grad():
            log_q = torch.log_softmax(lm.logits(sequences, lengths, shift=shift), dim=-1)
            loss = _zerocap_loss(log_q, lm0, target, config.fluency)
            grads = torch.autograd.grad(loss.sum(), flat)
        with torch.no_grad():
            for t, g in zip(flat, grads):  # per question and layer, as ZeroCap normalises
                t -= config.step_size * g / (g.flatten(1).norm(dim=1).view(-1, *[1] * (g.dim() - 1)) + 1e-15)
        if trace:
            history.append(log_q.detach().gather(1, ids).exp())
    with torch.no_grad():
        log_q = torch.log_softmax(lm.logits(sequences, lengths, shift=shift), dim=-1)
    fused = config.fusion * log_q + (1 - config.fusion) * lm0
    return fused.gather(1, ids), history
