"""Checkpoints are byte-reproducible: identical state gives identical bytes, whatever the file's name."""
import hashlib
from collections import Counter

import torch

from bench.common.serialization import save_torch
from bench.common.training import save_checkpoint


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_identical_state_saves_to_identical_bytes(tmp_path):
    torch.manual_seed(0)
    state = {"weights": torch.nn.Linear(4, 3).state_dict(), "step": 7}
    save_checkpoint(state, tmp_path / "checkpoint.pt")
    first = sha256(tmp_path / "checkpoint.pt")
    save_checkpoint(state, tmp_path / "checkpoint.pt")
    assert sha256(tmp_path / "checkpoint.pt") == first
    save_checkpoint(state, tmp_path / "other.pt")
    assert sha256(tmp_path / "other.pt") == first, "the file name is not recorded inside the checkpoint"


def test_equal_strings_and_shared_containers_do_not_change_the_bytes(tmp_path):
    """What a resume changes: which equal strings are one object, which containers are shared."""
    betas = (0.5, 0.999)
    shared = {"lr": 0.1, "betas": betas, "milestones": Counter({2: 1})}
    save_torch({"a": shared, "b": shared}, tmp_path / "shared.pt")
    fresh = {"a": {"".join(["l", "r"]): 0.1, "betas": (0.5, 0.999), "milestones": Counter({2: 1})},
             "b": {"".join(["l", "r"]): 0.1, "betas": (0.5, 0.999), "milestones": Counter({2: 1})}}
    save_torch(fresh, tmp_path / "fresh.pt")
    assert sha256(tmp_path / "shared.pt") == sha256(tmp_path / "fresh.pt")


def test_what_is_saved_loads_back_as_it_was(tmp_path):
    network = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    save_torch({"network": network.state_dict(), "milestones": Counter({2: 1})}, tmp_path / "c.pt")
    stored = torch.load(tmp_path / "c.pt", weights_only=True)
    assert stored["milestones"] == Counter({2: 1}) and type(stored["milestones"]) is Counter
    assert stored["network"]._metadata == network.state_dict()._metadata  # version numbers for load_state_dict
    copy = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    copy.load_state_dict(stored["network"])
    assert all(torch.equal(a, b) for a, b in zip(copy.state_dict().values(), network.state_dict().values()))


def test_checkpoints_follow_the_umask(tmp_path):
    """Issue 20, item 9: a checkpoint gets the permissions of any other file (0644 under umask 022)."""
    import os
    import stat

    previous = os.umask(0o022)
    try:
        save_torch({"step": 1}, tmp_path / "c.pt")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "c.pt").stat().st_mode) == 0o644
