"""Recognizer tests run with two torch threads whatever the caller set (as on CI).

A module that must stay smaller sets `TORCH_THREADS = 1`.
"""
import pytest
import torch


@pytest.fixture(autouse=True)
def torch_threads(request):
    previous = torch.get_num_threads()
    torch.set_num_threads(getattr(request.module, "TORCH_THREADS", 2))
    yield
    torch.set_num_threads(previous)
