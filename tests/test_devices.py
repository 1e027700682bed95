"""resolve_device: the one reading of --device (train under torchrun, finetune), with 0 and with 2 GPUs."""

import pytest
import torch

from puppet.devices import resolve_device
from puppet.errors import PuppetError


def test_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu", local_rank=3) == torch.device("cpu")
    for asked in ("cuda", "cuda:0"):
        with pytest.raises(PuppetError, match=f"--device {asked}: CUDA is not available here"):
            resolve_device(asked)
    with pytest.raises(PuppetError, match="--device gpu: unknown"):
        resolve_device("gpu")


def test_with_two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 1)  # torchrun: one GPU per rank
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:1", local_rank=0) == torch.device("cuda", 1)  # an explicit GPU wins
    assert resolve_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    for bad in ("cuda:2", "cuda:x"):
        with pytest.raises(PuppetError, match=f"--device {bad}: no such GPU here"):
            resolve_device(bad)
