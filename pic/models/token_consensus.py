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
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

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


class PromptedLM:
    """A causal LM answering prompts that share a prefix (instructions, few-shot examples).

    The shared prefix is run once and each question's prompt once more on top of it; their key/value caches are
    kept, so a proposal costs one forward pass over the last prompt token and the tokens generated so far.
    Next-token proposals (top-k log-probs) are memoised per token sequence, so repeated questions and every
    scorer combination share them.
    """

    def __init__(self, model, tokenizer, shared_prefix: str, prompt_fn: Callable[[str], str], batch_size: int = 32):
        self.model, self.tokenizer, self.prompt_fn, self.batch_size = model.eval(), tokenizer, prompt_fn, batch_size
        model.requires_grad_(False)  # only the kv variant's context shift is ever differentiated
        self.prefix_ids = tokenizer(shared_prefix, add_special_tokens=False)["input_ids"] if shared_prefix else []
        self.tokens_run = 0  # tokens through the network (prefix, prompts, proposals), for cost reports
        with torch.no_grad():
            self.prefix_kv = self._run(torch.tensor([self.prefix_ids]))[1] if self.prefix_ids else None
        self._context: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self._memo: dict[tuple[tuple[int, ...], int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._texts: dict[tuple[int, ...], str] = {}
        self.stop_ids = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
        self.stop_ids |= set(tokenizer.convert_tokens_to_ids(tokenizer.all_special_tokens))

    def prompt_ids(self, question: str) -> tuple[int, ...]:
        ids = tuple(self.tokenizer(self.prompt_fn(question), add_special_tokens=False)["input_ids"])
        if not ids:
            raise ValueError(f"the prompt of question {question!r} has no tokens")
        return ids

    def _run(self, ids, mask=None, positions=None, cache=None, keep=1):
        self.tokens_run += int(ids.numel() if mask is None else mask[:, -ids.shape[1]:].sum())
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                         use_cache=True, logits_to_keep=keep)
        return out.logits[:, -1].float(), [(k, v) for k, v, *_ in out.past_key_values]

    def _batch_cache(self, contexts: Sequence[tuple[int, ...]], shift=None):
        """A DynamicCache of prefix + each row's context (left-padded), the attention mask over it, the lengths."""
        from transformers import DynamicCache

        p, lengths = len(self.prefix_ids), [len(c) for c in contexts]
        width = max(lengths)
        mask = torch.tensor([[1] * p + [0] * (width - n) + [1] * n for n in lengths])
        if p == 0 and width == 0:
            return None, mask, lengths
        shaped = self.prefix_kv or next(self._context[c] for c in contexts if c)
        layers = []
        for layer, (k0, _) in enumerate(shaped):
            empty = k0.new_zeros(1, k0.shape[1], 0, k0.shape[3])
            ks, vs = [], []
            for c, n in zip(contexts, lengths):
                k, v = self._context[c][layer] if n else (empty, empty)
                pre_k, pre_v = self.prefix_kv[layer] if self.prefix_kv else (empty, empty)
                ks.append(torch.cat([pre_k, F.pad(k, (0, 0, width - n, 0))], dim=2))
                vs.append(torch.cat([pre_v, F.pad(v, (0, 0, width - n, 0))], dim=2))
            layers.append((torch.cat(ks), torch.cat(vs)))
        if shift is not None:  # the kv variant: a learned shift of the whole context, per question
            layers = [(k + dk, v + dv) for (k, v), (dk, dv) in zip(layers, shift)]
        return DynamicCache(layers), mask, lengths

    @torch.no_grad()
    def _fill_contexts(self, contexts: Sequence[tuple[int, ...]]) -> None:
        """Run each new context (a prompt but its last token) on the prefix once and keep its key/values."""
        todo = [c for c in dict.fromkeys(contexts) if c and c not in self._context]
        for i in range(0, len(todo), self.batch_size):
            chunk = todo[i:i + self.batch_size]
            width, p = max(len(c) for c in chunk), len(self.prefix_ids)
            ids = torch.tensor([[self.tokenizer.pad_token_id] * (width - len(c)) + list(c) for c in chunk])
            own = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in chunk])
            mask = torch.cat([torch.ones(len(chunk), p, dtype=own.dtype), own], dim=1)
            cache = self._batch_cache([()] * len(chunk))[0] if p else None
            _, kv = self._run(ids, mask, p + (own.cumsum(-1) - 1).clamp_min(0), cache)
            for row, c in enumerate(chunk):
                self._context[c] = [(k[row:row + 1, :, p + width - len(c):], v[row:row + 1, :, p + width - len(c):])
                                    for k, v in kv]

    def logits(self, sequences: Sequence[tuple[int, ...]], prompt_lengths: Sequence[int], shift=None) -> torch.Tensor:
        """Next-token logits [N, V] after prefix + each sequence (prompt + generated tokens, with the same number
        of generated tokens in every row); gradients flow to `shift` (the kv variant)."""
        new = [s[n - 1:] for s, n in zip(sequences, prompt_lengths)]
        if len({len(t) for t in new}) != 1:
            raise ValueError("every sequence of a batch needs the same number of generated tokens")
        contexts = [s[:n - 1] for s, n in zip(sequences, prompt_lengths)]
        self._fill_contexts(contexts)
        cache, mask, lengths = self._batch_cache(contexts, shift)
        ids = torch.tensor(new)
        positions = torch.tensor([[len(self.prefix_ids) + n + j for j in range(ids.shape[1])] for n in lengths])
        mask = torch.cat([mask, torch.ones_like(ids)], dim=1)
        return self._run(ids, mask, positions, cache)[0]

    @torch.no_grad()
    def top_k(self, sequences: Sequence[tuple[int, ...]], prompt_lengths: Sequence[int],
              k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probs [N, k], token ids [N, k]) of the k likeliest next tokens, best first; memoised."""
        lengths = dict(zip(sequences, prompt_lengths))
        todo = list(dict.fromkeys(s for s in sequences if (s, k) not in self._memo))
        for g in sorted({len(s) - lengths[s] for s in todo}):  # one batch shape per number of generated tokens
            group = [s for s in todo if len(s) - lengths[s] == g]
            for i in range(0, len(group), self.batch_size):
                chunk = group[i:i + self.batch_size]
                values, ids = torch.log_softmax(self.logits(chunk, [lengths[s] for s in chunk]), -1).topk(k, dim=-1)
                self._memo.update({(s, k): (v, t) for s, v, t in zip(chunk, values, ids)})
        pairs = [self._memo[(s, k)] for s in sequences]
        return torch.stack([v for v, _ in pairs]), torch.stack([t for _, t in pairs])

    def decode_tokens(self, ids: Sequence[int]) -> str:
        """The text of generated tokens (stop tokens left out); memoised, as candidates repeat across questions."""
        key = tuple(ids)
        if key not in self._texts:
            self._texts[key] = self.tokenizer.decode([i for i in key if i not in self.stop_ids])
        return self._texts[key]

    def ends_answer(self, token_id: int) -> bool:
        """An end-of-text token, or one starting with a line break or punctuation, ends a short answer."""
        if token_id in self.stop_ids:
            return True
        text = self.decode_tokens((token_id,)).lstrip(" ")
        return bool(text) and text[0] in "\n.,;:!?"


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


def consensus_decode(lm: PromptedLM, questions: Sequence[str], statement_fn: StatementFn,
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


def _refine_by_context(lm: PromptedLM, sequences, lengths, ids, target, config: ConsensusConfig, trace: bool):
    """ZeroCap's own variant: gradient steps on a shift of the cached keys and values (prefix + prompt), per
    question. Each step runs the network forward and backward; the candidates stay the model's original top-k.
    """
    with torch.no_grad():
        lm0 = torch.log_softmax(lm.logits(sequences, lengths), dim=-1)
    cache = lm._batch_cache([s[:n - 1] for s, n in zip(sequences, lengths)])[0]
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
