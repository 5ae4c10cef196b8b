"""Speed goals of Table 2's consensus, as ratios measured in one run (`make bench`; once, untimed, under `make test`):

* scoring candidate statements batched over candidates and frames costs at most a quarter of scoring them one
  question and one frame at a time;
* the logit-offset refinement costs at most half of ZeroCap's key/value-context refinement per position.
"""
import torch

from pic import ComposedEnergy, FunctionScorer
from pic.models.clip_style import ClipStyleModel
from pic.models.text_encoder import TextEmbeddingCache
from pic.tasks.vqa.frame_scorer import FrameTextScorer
from pic.lm import tiny_random_llama
from pic.optim.token_consensus import ConsensusConfig, consensus_decode
from pic.lm import PromptedLM
from timing import best_of

BATCHED_GOAL, LOGITS_GOAL = 0.25, 0.5  # the second with a 2-layer toy model; 21_visual_qa measures SmolLM2
QUESTIONS, CANDIDATES, FRAMES = 64, 32, 4


class SmallTower(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

    def forward(self, x, **context):
        return self.net(x)


def text_tower(texts):
    return torch.nn.functional.normalize(torch.stack([
        torch.randn(16, generator=torch.Generator().manual_seed(sum(map(ord, t)))) for t in texts]), dim=-1)


def setup():
    torch.manual_seed(0)
    scorers = []
    for name in ("a", "b"):
        model = ClipStyleModel(SmallTower(), 16, text_dim=16).eval()
        scorers.append(FrameTextScorer(model.embed_images, TextEmbeddingCache(text_tower), 10.0, name, image_size=32))
    frames = torch.rand(QUESTIONS, FRAMES, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    statements = [f"a colour{j % 12} shape{(i + j) % 5}" for i in range(QUESTIONS) for j in range(CANDIDATES)]
    return scorers, frames, statements


def batched(scorers, frames, statements):
    videos = {s.name: s.embed_videos(frames) for s in scorers}
    index = torch.arange(QUESTIONS).repeat_interleave(CANDIDATES)
    return ComposedEnergy(scorers)(statements, video_embeddings=videos, question_index=index).total


def one_at_a_time(scorers, frames, statements):
    out = []
    for q in range(QUESTIONS):
        videos = {}
        for s in scorers:  # frame by frame, then pooled as embed_videos does
            per_frame = torch.cat([s.embed_videos(frames[q:q + 1, f:f + 1]) for f in range(FRAMES)])
            videos[s.name] = torch.nn.functional.normalize(per_frame.mean(0, keepdim=True), dim=-1)
        mine = statements[q * CANDIDATES:(q + 1) * CANDIDATES]
        out.append(ComposedEnergy(scorers)(mine, video_embeddings=videos,
                                           question_index=torch.zeros(CANDIDATES, dtype=torch.long)).total)
    return torch.cat(out)


def test_scoring_is_batched_over_candidates_and_frames(benchmark):
    args = setup()
    torch.testing.assert_close(batched(*args), one_at_a_time(*args), atol=1e-4, rtol=1e-4)  # the same energies
    benchmark.pedantic(batched, args=args, rounds=3, iterations=1)
    if benchmark.disabled:
        return
    ratio = best_of(batched, args, 3) / best_of(one_at_a_time, args, 3)
    benchmark.extra_info.update(ratio=ratio)
    print(f"\nbatched / one at a time: {ratio:.3f} (goal <= {BATCHED_GOAL})")
    assert ratio <= BATCHED_GOAL


def decode_once(variant):
    model, tok = tiny_random_llama(hidden=64, layers=2)
    lm = PromptedLM(model, tok, "Q: what animal is on the sofa?\nA: cat\n", lambda q: f"Q: {q}\nA:")
    energy = ComposedEnergy([FunctionScorer(lambda x, **_: torch.tensor([-3.0 * ("e" in t) for t in x]), "likes_e",
                                            differentiable=False)])
    questions = [f"what color is shape {i}?" for i in range(8)]
    lm.top_k([lm.prompt_ids(q) for q in questions], [len(lm.prompt_ids(q)) for q in questions], 16)  # warm

    def run():
        return consensus_decode(lm, questions, lambda b, a: a or "x", energy,
                                ConsensusConfig(top_k=16, max_new_tokens=1, variant=variant))

    return run


def test_the_logit_offset_refinement_is_cheaper_than_the_key_value_refinement(benchmark):
    logits_run, kv_run = decode_once("logits"), decode_once("kv")
    benchmark.pedantic(logits_run, rounds=2, iterations=1)
    if benchmark.disabled:
        kv_run()
        return
    ratio = best_of(logits_run, (), 3) / best_of(kv_run, (), 3)
    benchmark.extra_info.update(ratio=ratio)
    print(f"\nlogit offset / key-value context per position: {ratio:.3f} (goal <= {LOGITS_GOAL})")
    assert ratio <= LOGITS_GOAL
