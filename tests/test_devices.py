"""resolve_device / device_type: the one reading of --device (train under torchrun, finetune, the live
backends, export.trt), with 0 and with 2 GPUs."""

import pytest
import torch

from puppet.devices import device_type, resolve_device
from puppet.errors import PuppetError


def test_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu", local_rank=3) == torch.device("cpu")
    for asked in ("cuda", "cuda:0"):
        no_gpu = f"--device {asked}: no CUDA GPU visible to torch; use --device cpu$"
        with pytest.raises(PuppetError, match=no_gpu):
            resolve_device(asked)
    for bad in ("gpu", "mps", "cuda0"):
        for read in (resolve_device, device_type):
            with pytest.raises(PuppetError, match=f"--device {bad}: unknown; use auto, cpu, cuda or cuda:N"):
                read(bad)
    kinds = [device_type(d) for d in (None, "auto", "cpu", "cuda", "cuda:3")]
    assert kinds == ["cpu", "cpu", "cpu", "cuda", "cuda"]
    assert resolve_device(None) == torch.device("cpu")


def test_with_two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 1)  # torchrun: one GPU per rank
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:1", local_rank=0) == torch.device("cuda", 1)  # an explicit GPU wins
    assert resolve_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    # local_rank=None (the live backends, export.trt): plain cuda and auto are the current device
    current = torch.device("cuda", 1)
    assert resolve_device("cuda", local_rank=None) == resolve_device(None, local_rank=None) == current
    assert resolve_device("cuda:0", local_rank=None) == torch.device("cuda", 0)
    assert device_type(None) == "cuda"
    for bad in ("cuda:2", "cuda:x"):
        no_such = rf"--device {bad}: no such GPU \(2 visible\); use cuda:0 to cuda:1$"
        with pytest.raises(PuppetError, match=no_such):
            resolve_device(bad)
