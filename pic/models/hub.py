"""Models by hub id for the `paper` profile: load them if the hub (or a local cache) has them, else stop at once
with a message naming the ids and how to get them."""
from __future__ import annotations

import os
import socket
from typing import Callable, TypeVar

T = TypeVar("T")


class HubUnavailableError(RuntimeError):
    """A `paper`-profile model is neither cached nor reachable."""


def hub_reachable(host: str = "huggingface.co", timeout: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def from_hub(loader: Callable[..., T], model_id: str, **kwargs) -> T:
    """loader(model_id, **kwargs) (e.g. AutoModel.from_pretrained), from the cache only when the hub is out of
    reach, so an offline machine fails in seconds instead of retrying."""
    online = hub_reachable()
    try:
        return loader(model_id, local_files_only=not online, **kwargs)
    except (OSError, ValueError) as err:
        where = "the hub did not provide it" if online else "this machine cannot reach huggingface.co"
        raise HubUnavailableError(
            f"the `paper` profile needs the hub model {model_id!r}, and {where} ({type(err).__name__}). "
            f"On a machine with internet run `python -c \"from huggingface_hub import snapshot_download; "
            f"snapshot_download('{model_id}')\"` once, or use the `local` profile, which runs offline.") from err
