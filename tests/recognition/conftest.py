"""Recognizer tests run with two torch threads whatever the caller set (timings and bf16 paths as on CI)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)
