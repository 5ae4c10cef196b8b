"""Frozen features are computed once per image, whatever the batches, and read back identically."""
import torch

from pic.tasks.vqa.feature_cache import CachedFeatures


class CountingTower(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = 0
        self.linear = torch.nn.Linear(12, 4)

    def forward(self, x):
        self.seen += len(x)
        return self.linear(x.flatten(1))


def test_each_image_goes_through_the_tower_once_and_comes_back_the_same(tmp_path, monkeypatch):
    monkeypatch.setenv("PIC_CACHE", str(tmp_path))
    torch.manual_seed(0)
    tower, x = CountingTower(), torch.rand(10, 3, 2, 2)
    cached = CachedFeatures(tower, tag="toy-v1", batch_size=4)
    first = cached(x[:6])
    assert tower.seen == 6 and torch.allclose(first, tower.linear(x[:6].flatten(1)))
    both = cached(torch.cat([x[4:10], x[:2]]))  # 4 new images, 4 seen ones, in another batching
    assert tower.seen == 10 and torch.equal(both[:2], first[4:6]) and torch.equal(both[-2:], first[:2])
    again = CachedFeatures(CountingTower(), tag="toy-v1")  # a new process: read from disk
    assert torch.equal(again(x), torch.cat([first, both[2:6]])) and again.tower.seen == 0
    assert CachedFeatures(CountingTower(), tag="toy-v2")(x[:1]).shape == (1, 4)  # another tag: its own file


def test_a_damaged_cache_file_is_computed_again_with_a_warning(tmp_path, monkeypatch):
    import pytest

    monkeypatch.setenv("PIC_CACHE", str(tmp_path))
    x = torch.rand(3, 3, 2, 2)
    first = CachedFeatures(CountingTower(), tag="toy")
    expected = first(x)
    first.path.write_bytes(first.path.read_bytes()[:50])  # truncated
    again = CachedFeatures(first.tower, tag="toy")
    with pytest.warns(UserWarning, match="the feature cache .*toy.safetensors cannot be read"):
        assert torch.equal(again(x), expected)
