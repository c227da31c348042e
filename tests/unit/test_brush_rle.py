import numpy as np
import pytest
from label_studio_sdk.converter.brush import mask2rle

from radlabel import brush_rle


@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (37, 53), (64, 64), (300, 300), (512, 512)])
@pytest.mark.parametrize("kind", ["empty", "full", "noise", "block", "one_voxel", "long_runs"])
def test_encoding_is_byte_identical_to_the_sdk_and_decodes_back(shape, kind):
    rng = np.random.default_rng(sum(shape))
    mask = np.zeros(shape, np.uint8)
    if kind == "full":
        mask[:] = 255
    elif kind == "noise":
        mask = (rng.random(shape) > 0.7).astype(np.uint8) * 255
    elif kind == "block":
        mask[shape[0] // 4: shape[0] // 2 + 1, shape[1] // 3:] = 255
    elif kind == "one_voxel":
        mask[shape[0] // 2, shape[1] // 2] = 255
    elif kind == "long_runs":  # runs far over 65,536 RGBA values
        mask[: shape[0] // 2] = 255
    ours = brush_rle.encode(mask)
    assert ours == mask2rle(mask)
    assert np.array_equal(brush_rle.decode(ours, *shape), mask)


def test_a_mask_must_be_two_dimensional():
    with pytest.raises(ValueError, match="2-D"):
        brush_rle.encode(np.zeros((2, 2, 2), np.uint8))
