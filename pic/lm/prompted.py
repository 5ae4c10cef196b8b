"""A causal LM as the proposer of token-level consensus (pic.optim.token_consensus): next-token top-k proposals
for many prompts that share a prefix, memoised, on key/value caches laid out by pic.lm.prefix.SharedPrefix."""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from pic.lm.prefix import SharedPrefix


class PromptedLM:
    """A causal LM answering prompts that share a prefix (instructions, few-shot examples).

    The shared prefix is run once and each question's prompt once more on top of it; their key/value caches are
    kept, so a proposal costs one forward pass over the last prompt token and the tokens generated so far.
    Next-token proposals (top-k log-probs) are memoised per token sequence, so repeated questions and every
    scorer combination share them (`proposals_memoised` counts them).
    """

    def __init__(self, model, tokenizer, shared_prefix: str, prompt_fn: Callable[[str], str], batch_size: int = 32):
        self.model, self.tokenizer, self.prompt_fn, self.batch_size = model.eval(), tokenizer, prompt_fn, batch_size
        model.requires_grad_(False)  # only the kv variant's context shift is ever differentiated
        self.prefix = SharedPrefix(model, tokenizer, shared_prefix)
        self.tokens_run = len(self.prefix.ids)  # tokens through the network (prefix, prompts, proposals)
        self._context: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self._memo: dict[tuple[tuple[int, ...], int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._texts: dict[tuple[int, ...], str] = {}
        self.stop_ids = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
        self.stop_ids |= set(tokenizer.convert_tokens_to_ids(tokenizer.all_special_tokens))

    @property
    def proposals_memoised(self) -> int:
        return len(self._memo)

    def prompt_ids(self, question: str) -> tuple[int, ...]:
        ids = tuple(self.tokenizer(self.prompt_fn(question), add_special_tokens=False)["input_ids"])
        if not ids:
            raise ValueError(f"the prompt of question {question!r} has no tokens")
        return ids

    def _run(self, ids, mask, positions, cache):
        self.tokens_run += int(mask[:, -ids.shape[1]:].sum())
        with self.prefix.attached():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                             use_cache=True, logits_to_keep=1)
        return out.logits[:, -1].float(), [(k, v) for k, v, *_ in out.past_key_values]

    def context_cache(self, contexts: Sequence[tuple[int, ...]], shift=None):
        """The cache of prefix + each row's context (left-padded), as SharedPrefix lays it out; None when empty."""
        return self.prefix.cache_of([self._context.get(c) for c in contexts], [len(c) for c in contexts], shift)[0]

    @torch.no_grad()
    def _fill_contexts(self, contexts: Sequence[tuple[int, ...]]) -> None:
        """Run each new context (a prompt but its last token) on the prefix once and keep its key/values."""
        todo = [c for c in dict.fromkeys(contexts) if c and c not in self._context]
        p = self.prefix.cached_length
        for i in range(0, len(todo), self.batch_size):
            chunk = todo[i:i + self.batch_size]
            cache, mask, ids, positions = self.prefix.batch([list(c) for c in chunk])
            _, kv = self._run(ids, mask, positions, cache)
            width = ids.shape[1]
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
        lengths = [len(c) for c in contexts]
        cache, mask = self.prefix.cache_of([self._context.get(c) for c in contexts], lengths, shift)
        ids = torch.tensor(new, device=self.prefix.device)
        positions = torch.tensor([[len(self.prefix.ids) + n + j for j in range(ids.shape[1])] for n in lengths],
                                 device=self.prefix.device)
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
