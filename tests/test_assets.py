"""Checkpoints and data are sha256-pinned: missing or altered files are refused with what provides them."""
import pytest
import torch

from pic import assets
from pic.assets import AssetError


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "DATA_DIR", tmp_path)
    return tmp_path


def test_a_saved_checkpoint_loads_back_verified(data_dir):
    tensors = {"w": torch.arange(6.0).reshape(2, 3)}
    assets.save_checkpoint(tensors, "toy/net.safetensors", "10_train_toy.ipynb", {"accuracy": "0.9"})
    loaded, meta = assets.load_checkpoint("toy/net.safetensors")
    torch.testing.assert_close(loaded["w"], tensors["w"])
    assert meta == {"accuracy": "0.9"}
    pin = assets.read_pin("toy/net.safetensors")
    assert pin["produced_by"] == "10_train_toy.ipynb" and (data_dir / "toy" / "net.safetensors.pin.json").exists()


def test_an_altered_checkpoint_is_refused(data_dir):
    path = assets.save_checkpoint({"w": torch.zeros(3)}, "toy.safetensors", "10_train_toy.ipynb")
    path.write_bytes(path.read_bytes()[:-1] + b"\x01")
    with pytest.raises(AssetError, match="expected .*refusing an altered or partial file.*10_train_toy.ipynb"):
        assets.load_checkpoint("toy.safetensors")


def test_a_missing_checkpoint_names_git_checkout_and_its_one_training_notebook_not_make_train(data_dir):
    path = assets.save_checkpoint({"w": torch.zeros(3)}, "toy.safetensors", "10_train_toy.ipynb")
    path.unlink()
    with pytest.raises(AssetError, match=r"missing; it is provided by: `git checkout -- data/toy.safetensors "
                                         r"data/toy.safetensors.pin.json` restores the committed file; "
                                         r"`python -m pic.reproduce --train 10` retrains it") as err:
        assets.load_checkpoint("toy.safetensors")
    assert "make train" not in str(err.value)
    with pytest.raises(AssetError, match="has no pin file.*git checkout -- data/never_trained.safetensors") as err:
        assets.load_checkpoint("never_trained.safetensors")
    assert "make train" not in str(err.value)


def test_download_checks_the_sha256_and_explains_offline_failures(tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("hello")
    good = assets.sha256_file(src)
    out = assets.download(src.as_uri(), tmp_path / "cache" / "a.txt", good, "pip install something")
    assert out.read_text() == "hello"
    with pytest.raises(AssetError, match="expected"):
        assets.download(src.as_uri(), tmp_path / "cache" / "b.txt", "0" * 64, "pip install something")
    with pytest.raises(AssetError, match="cannot download .*offline, it is provided by: pip install something"):
        assets.download((tmp_path / "absent").as_uri(), tmp_path / "cache" / "c.txt", good, "pip install something")


def test_cache_dir_honours_pic_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIC_CACHE", str(tmp_path / "c"))
    assert assets.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


def test_a_checkpoint_saved_twice_in_separate_processes_has_the_same_pin(data_dir):
    """safetensors writes metadata in hash-map order (random per process); the pin must not depend on it."""
    import subprocess
    import sys

    script = ("import sys, torch; from pathlib import Path; from pic import assets; assets.DATA_DIR = Path(sys.argv[1]);"
              "assets.save_checkpoint({'w': torch.arange(4.0), 'b': torch.ones(2)}, 'toy.safetensors', 'nb',"
              "{k: str(i) for i, k in enumerate('zyxwvutsrq')})")
    pins = set()
    for _ in range(3):
        subprocess.run([sys.executable, "-c", script, str(data_dir)], check=True)
        pins.add(assets.read_pin("toy.safetensors")["sha256"])
    assert len(pins) == 1
    tensors, meta = assets.load_checkpoint("toy.safetensors")
    assert meta == {k: str(i) for i, k in enumerate("zyxwvutsrq")} and tensors["w"].tolist() == [0, 1, 2, 3]
