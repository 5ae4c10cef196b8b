"""One shared prompt prefix, run once, and the one builder of left-padded batches after it.

Every row of a batch is laid out as
    [shared prefix][padding][row tokens],
with the padding masked out and positions counting only real tokens, so every row sees the prefix exactly as if it
had been run alone (a test checks this against plain `generate`). Sampling and beam search (pic.lm.decoding),
teacher-forced scoring (pic.lm.decoding.continuation_logprobs) and token-level consensus (pic.lm.prompted) all
build their batches here. `fast_cpu_inference` adapts a model so that rows attend to one copy of the prefix.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

ATTENTION = "pic_decode"  # the attention implementation registered by `fast_cpu_inference`
_PREFIX_ATTRIBUTE = "pic_shared_prefix"  # where an attention layer finds its shared prefix during a call


def _decode_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention as batched matmuls over grouped heads (no repeat of the K/V heads), for one-token decoding steps
    and for rows that share a prefix: the layer's prefix (keys, values) [1, Hkv, P, d], attached by
    `SharedPrefix.attached()`, is attended by every row without ever being copied per row (so the cache holds only
    each row's own tokens). Everything else goes to the library's SDPA, whose CPU kernel is several times slower
    for a single query row."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, q_len, dim = query.shape
    prefix = getattr(module, _PREFIX_ATTRIBUTE, None)
    if (prefix is None and q_len != 1) or dropout or kwargs.get("output_attentions"):
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    kv_heads, length = key.shape[1], key.shape[2]
    rows = heads // kv_heads * q_len
    q = query.reshape(batch, kv_heads, rows, dim) * (scaling if scaling is not None else dim ** -0.5)
    scores = (q @ key.transpose(-1, -2)).float()  # [B, Hkv, G*q, T]: query head groups x positions
    if attention_mask is not None:  # SDPA-style: bool [B, 1, q, T] (True = attend) or additive float
        mask = attention_mask[:, :, -q_len:, -length:]
        if q_len > 1:  # rows are (group, query) pairs; one query row broadcasts over the groups as it is
            mask = mask.repeat(1, 1, heads // kv_heads, 1)
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    elif q_len > 1:  # no mask given: plain causal
        causal = torch.ones(q_len, length, dtype=torch.bool, device=query.device).tril(length - q_len)
        scores = scores.masked_fill(~causal.repeat(heads // kv_heads, 1), float("-inf"))
    if prefix is not None:  # [Hkv, B*G*q, d] @ [Hkv, d, P]: one matmul per KV head, the prefix read once
        pk, pv = prefix
        flat = q.transpose(0, 1).reshape(kv_heads, batch * rows, dim)
        prefix_scores = (flat @ pk[0].transpose(-1, -2)).float().view(kv_heads, batch, rows, -1).transpose(0, 1)
        scores = torch.cat([prefix_scores, scores], dim=-1)
    weights = torch.softmax(scores, dim=-1).to(value.dtype)
    out = weights[..., -length:] @ value
    if prefix is not None:
        w = weights[..., :-length].transpose(0, 1).reshape(kv_heads, batch * rows, -1)
        out = out + (w @ pv[0]).view(kv_heads, batch, rows, dim).transpose(0, 1)
    return out.reshape(batch, heads, q_len, dim).transpose(1, 2).contiguous(), None


class _Float32Head(torch.nn.Module):
    """The output projection with float32 logits on bfloat16 hidden states. bfloat16 logits are coarse (steps of
    0.125 near 20), so exact ties would otherwise pick greedy and beam tokens, and log-probabilities would be
    rounded. Hidden states and weight are bfloat16 values, so oneDNN's bfloat16 matmul (float32 accumulation and
    output) computes the same products as float32 would, 3x faster: this head costs as much as the whole body
    otherwise."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = torch.nn.Parameter(weight.detach().to(torch.bfloat16).float(), requires_grad=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        setting = torch.backends.mkldnn.matmul
        before, setting.fp32_precision = setting.fp32_precision, "bf16"
        try:
            return torch.nn.functional.linear(hidden.to(torch.bfloat16).float(), self.weight)
        finally:
            setting.fp32_precision = before


def fast_cpu_inference(model, dtype: str = "auto"):
    """Adapt a causal LM for fast batched decoding on CPU (in place; returns it).

    dtype "auto": bfloat16 where the CPU computes it natively (AVX512-BF16 or AMX: about 3x the float32 matmul
    speed), else float32; or "float32" / "bfloat16". With bfloat16 the output projection stays in float32 (an
    untied copy). A model on an accelerator is returned unchanged.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if next(model.parameters()).device.type != "cpu":
        return model
    if dtype == "auto":
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        dtype = "bfloat16" if native else "float32"
    model.to(getattr(torch, dtype))
    if dtype == "bfloat16":
        model.set_output_embeddings(_Float32Head(model.get_output_embeddings().weight))
    AttentionInterface.register(ATTENTION, _decode_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    model.set_attn_implementation(ATTENTION)
    return model


class SharedPrefix:
    """A prompt prefix run through the model once; its keys and values start every batch."""

    def __init__(self, model, tokenizer, text: str):
        self.model, self.tokenizer, self.text = model, tokenizer, text
        self.ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        self.kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        if self.ids:
            with torch.no_grad():
                out = model(input_ids=torch.tensor([self.ids], device=self.device), use_cache=True, logits_to_keep=1)
            self.kv = [(k, v) for k, v, *_ in out.past_key_values]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tail_ids(self, text: str) -> list[int]:
        """Token ids of a prompt tail (tokenized on its own: the prefix should end at a natural boundary)."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @property
    def shared(self) -> bool:
        """Whether rows attend to this single copy of the prefix (a model adapted by `fast_cpu_inference`), so that
        their caches hold only their own tokens; otherwise each row's cache starts with a copy of the prefix."""
        return bool(self.kv) and getattr(self.model.config, "_attn_implementation", None) == ATTENTION

    @contextmanager
    def attached(self):
        """Within it, each attention layer of the model sees its prefix keys and values (when `shared`)."""
        layers = [m for m in self.model.modules() if isinstance(getattr(m, "layer_idx", None), int)
                  and any(hasattr(m, a) for a in ("q_proj", "c_attn"))] if self.shared else []
        for m in layers:
            setattr(m, _PREFIX_ATTRIBUTE, self.kv[m.layer_idx])
        try:
            yield
        finally:
            for m in layers:
                delattr(m, _PREFIX_ATTRIBUTE)

    @property
    def cached_length(self) -> int:
        """How many prefix positions each row's cache holds (0 when the prefix is shared)."""
        return 0 if self.shared else len(self.ids)

    def batch(self, tails: list[list[int]]):
        """(cache, attention mask, tail block ids [B, W], positions [B, W]) for a batch of tails, left-padded within
        the tail block. When the prefix is `shared` the cache starts empty and the mask covers the tail block only;
        otherwise the cache holds the prefix, expanded to B rows (a copy on first use), and the mask covers
        [prefix][tail block]."""
        from transformers import DynamicCache

        if any(not t for t in tails):
            raise ValueError("every prompt tail needs at least one token")
        lengths = [len(t) for t in tails]
        width, pad = max(lengths), self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(t)) + list(t) for t in tails], device=self.device)
        mask = self.mask(lengths)
        positions = (len(self.ids) + mask[:, self.cached_length:].cumsum(-1) - 1).clamp_min(0)
        if not self.cached_length:
            return DynamicCache(), mask, ids, positions
        b = len(tails)
        cache = DynamicCache([(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in self.kv])
        return cache, mask, ids, positions

    def mask(self, lengths: list[int]) -> torch.Tensor:
        """The attention mask [B, cached_length + W] of rows of these lengths after the prefix, left-padded to the
        longest (W): [prefix (when cached)][padding][row]."""
        width, p = max(lengths, default=0), self.cached_length
        return torch.tensor([[1] * p + [0] * (width - n) + [1] * n for n in lengths], dtype=torch.long,
                            device=self.device)

    def cache_of(self, rows: list, lengths: list[int], shift=None):
        """(cache, mask) of rows that continue from key/values of their own: row i's per-layer [(keys, values)]
        [1, H, n_i, d] (None when n_i = 0), laid out [prefix (when cached)][padding][row] like `batch`. `shift`:
        per-layer (dk, dv) added to the whole cache (ZeroCap's key/value variant). None for an empty cache."""
        from transformers import DynamicCache

        p, width = self.cached_length, max(lengths, default=0)
        mask = self.mask(lengths)
        if p == 0 and width == 0:
            return None, mask
        template = self.kv if p else next(r for r, n in zip(rows, lengths) if n)
        layers = []
        for layer, (k0, _) in enumerate(template):
            empty = k0.new_zeros(1, k0.shape[1], 0, k0.shape[3])
            pre_k, pre_v = self.kv[layer] if p else (empty, empty)
            ks, vs = [], []
            for row, n in zip(rows, lengths):
                k, v = row[layer] if n else (empty, empty)
                ks.append(torch.cat([pre_k, torch.nn.functional.pad(k, (0, 0, width - n, 0))], dim=2))
                vs.append(torch.cat([pre_v, torch.nn.functional.pad(v, (0, 0, width - n, 0))], dim=2))
            layers.append((torch.cat(ks), torch.cat(vs)))
        if shift is not None:
            layers = [(k + dk, v + dv) for (k, v), (dk, dv) in zip(layers, shift)]
        return DynamicCache(layers), mask
