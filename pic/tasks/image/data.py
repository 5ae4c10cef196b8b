"""Fashion-MNIST: read from the Debian package `dataset-fashion-mnist`, else downloaded once with a sha256 check.

Images come back as float tensors [N, 1, 28, 28] in [-1, 1] (the diffusion models' range) with int64 labels.
The 60,000 training images are split, without randomness, into `train` (55,000) and `validation` (the last 500
images of each class, 5,000): validation chooses guidance weights and stops nothing else; `test` (10,000) is
only ever used for the reported metrics.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from pic.assets import AssetError, cache_dir, download, sha256_file

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# what a caption calls each class; the first name is the one used in the default prompts
CLASS_NAMES = (("t-shirt", "top", "tee"), ("pair of trousers", "pair of pants", "trousers"),
               ("pullover", "sweater", "jumper"), ("dress", "gown", "frock"), ("coat", "jacket", "overcoat"),
               ("sandal", "summer sandal", "open shoe"), ("shirt", "button-up shirt", "blouse"),
               ("sneaker", "running shoe", "trainer"), ("bag", "handbag", "purse"),
               ("ankle boot", "boot", "short boot"))
# captions the CLIP-style scorer is trained on; the experiment's prompts use another template, so the scorer is
# asked in words it never saw in training
TRAIN_TEMPLATES = ("a picture of a {}", "an image of a {}", "a {} on a plain background",
                   "a black and white photo of a {}", "a low-resolution photo of the {}", "a product photo of a {}",
                   "this is a {}", "a grey {}", "a centred picture of one {}")
PROMPT_TEMPLATE = "a photo of a {}"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FILES = {"train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
         "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz"}
# Debian recompressed the files (0.0~git20200523.55506a9-1): same images, other gzip bytes, so two sets of hashes.
DEBIAN_SHA256 = {
    "train_images": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train_labels": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "test_images": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "test_labels": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
# the official files (their MD5s are the ones the Fashion-MNIST README lists; sha256 as TFDS records them)
OFFICIAL_SHA256 = {
    "train_images": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train_labels": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "test_images": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "test_labels": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
PROVIDER = (f"`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; `make install` does it as root), "
            f"or internet access to {OFFICIAL_URL}")
SPLITS = ("train", "validation", "test")
VALIDATION_PER_CLASS = 500


def idx_file(key: str) -> Path:
    """The verified .gz file: Debian's copy when installed and intact, else the official one, downloaded once."""
    debian = DEBIAN_DIR / FILES[key]
    if debian.exists() and sha256_file(debian) == DEBIAN_SHA256[key]:
        return debian
    try:
        return download(OFFICIAL_URL + FILES[key], cache_dir() / "fashion-mnist" / FILES[key], OFFICIAL_SHA256[key],
                        PROVIDER)
    except AssetError as err:
        raise AssetError(f"Fashion-MNIST file {FILES[key]} is not installed and cannot be downloaded from "
                         f"{OFFICIAL_URL}{FILES[key]}: install it with `apt-get install dataset-fashion-mnist` "
                         f"(or `make install` as root). Cause: {err}") from err


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (the MNIST format: magic, dims, big-endian sizes, uint8 data)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _validation_mask(labels: np.ndarray) -> np.ndarray:
    """The last VALIDATION_PER_CLASS training images of each class (by file order): a fixed, balanced split."""
    mask = np.zeros(len(labels), dtype=bool)
    for c in range(len(CLASSES)):
        mask[np.flatnonzero(labels == c)[-VALIDATION_PER_CLASS:]] = True
    return mask


def load_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N, 1, 28, 28] float32 in [-1, 1], labels [N] int64) of `train`, `validation` or `test`."""
    if split not in SPLITS:
        raise ValueError(f"unknown Fashion-MNIST split {split!r}; choose one of {list(SPLITS)}")
    prefix = "test" if split == "test" else "train"
    images = read_idx(idx_file(f"{prefix}_images"))
    labels = read_idx(idx_file(f"{prefix}_labels"))
    if split != "test":
        keep = _validation_mask(labels) == (split == "validation")
        images, labels = images[keep], labels[keep]
    x = torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def class_index(name: str) -> int:
    """The class id of a class name (as in CLASSES or any caption name, case-insensitive); else a clear error."""
    key = name.strip().lower()
    for i, (label, names) in enumerate(zip(CLASSES, CLASS_NAMES)):
        if key == label.lower() or key in names:
            return i
    raise ValueError(f"unknown Fashion-MNIST class {name!r}; the classes are {list(CLASSES)}")


def prompt_for(class_id: int, template: str = PROMPT_TEMPLATE) -> str:
    """The free-text prompt of a class: the template with the class's first caption name."""
    return template.format(CLASS_NAMES[class_id][0])
