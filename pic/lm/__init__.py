"""Language-model plumbing shared by Tables 2 and 3: loading (load), one shared-prefix batch builder (prefix),
batched sampling / beam search / teacher-forced scoring (decoding), LoRA adapters (lora), and the proposer of
token-level consensus (prompted)."""
from pic.lm.decoding import Continuation, beam_search, continuation_logprobs, sample
from pic.lm.load import load_causal_lm, load_qwen_coder, load_smollm2, load_smollm2_tokenizer, tiny_random_llama
from pic.lm.prefix import SharedPrefix, fast_cpu_inference
from pic.lm.prompted import PromptedLM

__all__ = ["Continuation", "PromptedLM", "SharedPrefix", "beam_search", "continuation_logprobs", "fast_cpu_inference",
           "load_causal_lm", "load_qwen_coder", "load_smollm2", "load_smollm2_tokenizer", "sample", "tiny_random_llama"]
