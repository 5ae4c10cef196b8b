"""Batched decoding for causal LMs from one shared prompt prefix (pic.lm.prefix): sampling (with the model's own
token log-probabilities recorded), beam search (transformers `generate`), both on a KV cache, and teacher-forced
log-probabilities of given continuations.

Why not `generate` for everything: a few-shot prefix of hundreds of tokens would be recomputed for every problem
and every sample, and `generate` cannot hand back the untempered log-probability of each sampled token without
storing every step's full logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from pic.lm.prefix import SharedPrefix

StopRule = Callable[[str], "int | None"]  # generated text -> where to cut it, when generation should stop there


@dataclass
class Continuation:
    """One generated continuation of a prompt.

    text: decoded, cut where the stop rule said; tokens: every generated token id (up to and including the one
    that triggered the stop); logprobs: log p(token | all before) under the model itself, untempered, one per token
    ([] when unknown, as for beam search); stopped: ended by the stop rule or EOS (not by the length limit).
    """

    text: str
    tokens: list[int]
    logprobs: list[float]
    stopped: bool

    @property
    def mean_logprob(self) -> float | None:
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else None


@torch.no_grad()
def sample(prefix: SharedPrefix, tails: list[list[int]], *, n: int | Sequence[int] = 1,
           temperature: float | Sequence[float] = 1.0, max_new_tokens: int | Sequence[int] = 256,
           stop: StopRule | Sequence[StopRule] | None = None, generator: torch.Generator | None = None,
           batch_size: int = 64) -> list[list[Continuation]]:
    """n continuations of each prompt (prefix + tail): ancestral sampling at `temperature`, greedy where it is 0.

    n, temperature, max_new_tokens, stop: one value for every prompt, or one per tail. Continuous batching: up to
    batch_size rows decode together; a finished row leaves, and waiting prompts join as soon as all the rows of one
    fit (each tail is prefilled once, for its n rows). Deterministic for a given generator state and thread count.
    Returns, per tail, its n continuations.
    """
    def per_tail(value, what):
        values = list(value) if isinstance(value, Sequence) else [value] * len(tails)
        if len(values) != len(tails):
            raise ValueError(f"{len(values)} {what} for {len(tails)} prompt tails")
        return values

    ns, temps, rules = per_tail(n, "sample counts"), per_tail(temperature, "temperatures"), per_tail(stop, "stop rules")
    limits = per_tail(max_new_tokens, "length limits")
    if min(ns, default=1) < 1 or min(temps, default=0) < 0:
        raise ValueError(f"need n >= 1 and temperatures >= 0, got n={n}, temperature={temperature}")
    batch = _Batch(prefix)
    out: list[list[Continuation | None]] = [[None] * k for k in ns]
    waiting = list(range(len(tails)))
    while waiting or batch.rows:
        joining: list[int] = []
        while waiting and (batch.rows + sum(ns[i] for i in joining) + ns[waiting[0]] <= batch_size
                           or not (batch.rows or joining)):
            joining.append(waiting.pop(0))
        if joining:
            batch.admit([tails[i] for i in joining], [ns[i] for i in joining],
                        [(i, k, temps[i], rules[i], limits[i]) for i in joining for k in range(ns[i])])
        for (i, k, _, rule, _), tokens, logps, stopped in batch.step(generator):
            out[i][k] = _finish(prefix.tokenizer, tokens, logps, stopped, rule)
    return out


class _Batch:
    """The rows decoding together: their KV cache (laid out [prefix][padding][tail + generated]), attention mask,
    next positions, the last logits, and per row ((tail index, sample index, temperature, stop rule, length limit),
    tokens so far, log-probabilities, text)."""

    def __init__(self, prefix: SharedPrefix):
        self.prefix, self.cache, self.mask = prefix, None, None
        self.state: list = []
        self.pieces: dict[int, str] = {}  # token id -> its text, to watch for stops without re-decoding whole rows

    def admit(self, tails, counts, keys):
        model, P = self.prefix.model, self.prefix.cached_length
        cache, mask, ids, positions = self.prefix.batch(tails)
        with self.prefix.attached():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                           use_cache=True, logits_to_keep=1).logits[:, -1].float()
        if any(c > 1 for c in counts):  # each tail's prefill is shared by its n samples
            rows = torch.repeat_interleave(torch.arange(len(tails)), torch.tensor(counts))
            cache.batch_select_indices(rows.to(mask.device))
            mask, logits = mask[rows], logits[rows]
        state = [[key, [], [], ""] for key in keys]
        next_pos = positions[:, -1].repeat_interleave(torch.tensor(counts)) + 1
        if not self.rows:
            self.cache, self.mask, self.logits, self.state, self.next_pos = cache, mask, logits, state, next_pos
        else:  # pad the shorter side after the prefix so that all rows share one cache length
            width = max(self.mask.shape[1], mask.shape[1])
            for old, new in zip(self.cache.layers, cache.layers):
                old.keys = torch.cat([_pad_after(old.keys, 2, P, width), _pad_after(new.keys, 2, P, width)])
                old.values = torch.cat([_pad_after(old.values, 2, P, width), _pad_after(new.values, 2, P, width)])
            self.mask = torch.cat([_pad_after(self.mask, 1, P, width), _pad_after(mask, 1, P, width)])
            self.logits = torch.cat([self.logits, logits])
            self.next_pos = torch.cat([self.next_pos, next_pos])
            self.state += state

    @property
    def rows(self) -> int:
        return len(self.state)

    def step(self, generator):
        """Choose one token per row; return the rows that finished; run the model on the others."""
        tokenizer = self.prefix.tokenizer
        logp = torch.log_softmax(self.logits, dim=-1)
        temps = torch.tensor([s[0][2] for s in self.state], device=self.logits.device)
        token = logp.argmax(-1)
        sampled = temps > 0
        if sampled.any():  # inverse-CDF draw: one uniform per row (torch.multinomial draws one per vocabulary entry)
            cdf = torch.softmax(self.logits[sampled] / temps[sampled, None], dim=-1).cumsum(-1)
            u = torch.rand(cdf.shape[0], 1, generator=generator).to(cdf.device) * cdf[:, -1:]  # a CPU generator
            token[sampled] = torch.searchsorted(cdf, u).squeeze(1).clamp_max(cdf.shape[1] - 1)
        chosen = logp.gather(1, token[:, None]).squeeze(1).tolist()
        keep, done = [], []
        for j, (s, t) in enumerate(zip(self.state, token.tolist())):
            key, tokens, logps, _ = s
            tokens.append(t)
            logps.append(chosen[j])
            if t == tokenizer.eos_token_id:
                done.append((key, tokens, logps, True))
                continue
            if t not in self.pieces:
                self.pieces[t] = tokenizer.decode([t])
            s[3] += self.pieces[t]
            if key[3] is not None and key[3](s[3]) is not None:
                done.append((key, tokens, logps, True))
            elif len(tokens) >= key[4]:
                done.append((key, tokens, logps, False))
            else:
                keep.append(j)
        if len(keep) < self.rows:
            index = torch.tensor(keep, dtype=torch.long)
            self.cache.batch_select_indices(index.to(self.mask.device))
            self.mask, self.next_pos, token = self.mask[index], self.next_pos[index], token[index]
            self.state = [self.state[j] for j in keep]
        if self.rows:
            self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
            with self.prefix.attached():
                self.logits = self.prefix.model(input_ids=token[:, None].to(self.mask.device),
                                                attention_mask=self.mask, position_ids=self.next_pos[:, None],
                                                past_key_values=self.cache, use_cache=True).logits[:, -1].float()
            self.next_pos = self.next_pos + 1
        return done


def _pad_after(t: torch.Tensor, dim: int, start: int, width: int) -> torch.Tensor:
    """t with zero columns inserted at `start` along `dim` (after the prefix) until it is `width` long."""
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    head, tail = t.narrow(dim, 0, start), t.narrow(dim, start, t.shape[dim] - start)
    return torch.cat([head, t.new_zeros(shape), tail], dim=dim)


def _finish(tokenizer, tokens, logprobs, stopped, stop) -> Continuation:
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    cut = stop(text) if stop is not None else None
    return Continuation(text[:cut] if cut is not None else text, tokens, logprobs, stopped)


class _StopRuleCriteria:
    """A transformers stopping criterion per row (each beam ends on its own) from a text stop rule."""

    def __init__(self, tokenizer, stop: StopRule, start: int):
        self.tokenizer, self.stop, self.start = tokenizer, stop, start

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.start:], skip_special_tokens=True)
        return torch.tensor([self.stop(t) is not None for t in texts], device=input_ids.device)


@torch.no_grad()
def beam_search(prefix: SharedPrefix, tails: list[list[int]], *, num_beams: int = 5, max_new_tokens: int = 256,
                stop: StopRule | None = None, batch_size: int = 64) -> list[Continuation]:
    """The best beam of `generate(num_beams=...)` for each prompt. Every tail but its last token is prefilled once
    (the cache is copied to the beams), so `generate` only decodes; with a shared prefix the beams' caches hold
    their own tokens only and `generate` passes the prefix and explicit positions on to the model."""
    from transformers import StoppingCriteriaList

    model, tokenizer = prefix.model, prefix.tokenizer
    per_batch = max(1, batch_size // num_beams)
    out = []
    for i in range(0, len(tails), per_batch):
        chunk = tails[i:i + per_batch]
        if min(len(t) for t in chunk) < 2:
            raise ValueError("beam_search needs prompt tails of at least two tokens")
        cache, mask, ids, positions = prefix.batch([t[:-1] for t in chunk])
        with prefix.attached():
            model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True,
                  logits_to_keep=1)
        cache.batch_repeat_interleave(num_beams)
        last = torch.tensor([[t[-1]] for t in chunk], device=ids.device)
        extra = {}
        if prefix.shared:
            input_ids = torch.cat([ids, last], dim=1)
            extra = dict(position_ids=torch.cat([positions, positions[:, -1:] + 1], dim=1))
        else:
            prefix_ids = torch.tensor([prefix.ids] * len(chunk), dtype=torch.long, device=ids.device)
            input_ids = torch.cat([prefix_ids.view(len(chunk), -1), ids, last], dim=1)
        full_mask = torch.cat([mask, torch.ones_like(last)], dim=1)
        criteria = StoppingCriteriaList([_StopRuleCriteria(tokenizer, stop, input_ids.shape[1])]) if stop else None
        with prefix.attached():
            seqs = model.generate(input_ids=input_ids, attention_mask=full_mask, past_key_values=cache,
                                  num_beams=num_beams, do_sample=False, max_new_tokens=max_new_tokens,
                                  stopping_criteria=criteria, early_stopping=True,
                                  pad_token_id=tokenizer.pad_token_id, **extra)
        for row in seqs[:, input_ids.shape[1]:].tolist():
            while row and row[-1] == tokenizer.pad_token_id:  # generate pads finished beams
                row.pop()
            text = tokenizer.decode(row, skip_special_tokens=True)
            out.append(_finish(tokenizer, row, [], stop is not None and stop(text) is not None, stop))
    return out


@torch.no_grad()
def continuation_logprobs(model, tokenizer, prompts: list[str], continuations: list[str],
                          batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced log p(continuation | prompt) per pair: (sum of token log-probs [N], token counts [N]).

    The continuation is tokenized on its own and appended to the prompt's tokens, so its tokens are the same
    whatever the prompt; divide the sums by the counts for a length-normalised score.
    """
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts for {len(continuations)} continuations")
    if any(not p for p in prompts):
        raise ValueError("every continuation needs a non-empty prompt to be conditioned on")
    rows = SharedPrefix(model, tokenizer, "")  # no shared prefix: the builder only left-pads the rows
    sums, counts = [], []
    for i in range(0, len(prompts), batch_size):
        p_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[i:i + batch_size]]
        c_ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations[i:i + batch_size]]
        _, mask, ids, positions = rows.batch([p + c for p, c in zip(p_ids, c_ids)])
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        token_logp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
        is_cont = torch.zeros_like(token_logp, dtype=torch.bool)
        width = ids.shape[1]
        for row, c in enumerate(c_ids):
            if c:
                is_cont[row, width - 1 - len(c):] = True  # positions predicting the continuation's tokens
        sums.append((token_logp * is_cont).sum(1).cpu())
        counts.append(is_cont.sum(1).cpu())
    return torch.cat(sums), torch.cat(counts)
