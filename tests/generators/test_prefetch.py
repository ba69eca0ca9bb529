"""generators.prefetch: batches cross the process boundary with their memory layout (it changes the rounding)."""
import pytest
import torch

from generators.prefetch import pack, unpack


@pytest.mark.parametrize("layout", ["contiguous", "channels-last", "permuted"])
def test_pack_keeps_values_and_strides(layout):
    tensor = torch.randn(2, 3, 5, 4)
    if layout == "channels-last":
        tensor = torch.randn(2, 5, 4, 3).permute(0, 3, 1, 2)  # as a render batch: HWC images, permuted
    elif layout == "permuted":
        tensor = torch.randn(4, 5, 2, 3).permute(2, 3, 1, 0)
    array, order = pack(tensor)
    assert array.flags["C_CONTIGUOUS"]  # what pickling a numpy array would make of it anyway
    restored = unpack((array.copy(), order))
    assert torch.equal(restored, tensor) and restored.stride() == tensor.stride()
