import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiofold.crops import crop_starts, make_crops, unique_crops


def test_first_five_starts_are_begin_center_end_quarters():
    assert crop_starts(100, 20, 5) == [0, 40, 80, 20, 60]
    assert crop_starts(101, 20, 5) == [0, 40, 81, 20, 60]
    assert crop_starts(100, 20, 2) == [0, 40]
    assert crop_starts(100, 20, 1) == [0]


def test_extra_starts_are_seeded():
    a, b, c = (
        crop_starts(10_000, 100, 12, seed=1),
        crop_starts(10_000, 100, 12, seed=1),
        crop_starts(10_000, 100, 12, seed=2),
    )
    assert a == b and a[:5] == c[:5] and a[5:] != c[5:]
    assert len(a) == 12 and all(0 <= s <= 9_900 for s in a)


def test_short_clip_starts_at_zero():
    assert crop_starts(10, 20, 8) == [0] * 8
    assert crop_starts(20, 20, 3) == [0, 0, 0]


def test_bad_arguments():
    with pytest.raises(ValueError):
        crop_starts(100, 20, 0)
    with pytest.raises(ValueError):
        crop_starts(100, 0, 1)
    with pytest.raises(ValueError, match="pad"):
        make_crops(np.zeros(5, np.float32), 3, 1, pad="reflect")


def test_make_crops_cuts_the_right_samples():
    wave = np.arange(100, dtype=np.float32)
    crops = make_crops(wave, 20, 5)
    assert crops.shape == (5, 20) and crops.dtype == np.float32
    np.testing.assert_array_equal(crops[:, 0], [0, 40, 80, 20, 60])
    np.testing.assert_array_equal(crops[2], np.arange(80, 100))


def test_short_clips_are_zero_padded_or_looped():
    wave = np.array([1, 2, 3], dtype=np.float32)
    np.testing.assert_array_equal(make_crops(wave, 7, 2, pad="zeros"), [[1, 2, 3, 0, 0, 0, 0]] * 2)
    np.testing.assert_array_equal(make_crops(wave, 7, 1, pad="loop"), [[1, 2, 3, 1, 2, 3, 1]])
    np.testing.assert_array_equal(make_crops(np.zeros(0, np.float32), 4, 1, pad="loop"), [[0, 0, 0, 0]])


def test_unique_crops_runs_a_short_clip_once():
    wave = np.ones(50, dtype=np.float32)
    crops, index = unique_crops(wave, 80, 10)
    assert crops.shape == (1, 80) and index.tolist() == [0] * 10


def test_unique_crops_keeps_request_order_and_merges_duplicates():
    wave = np.arange(24, dtype=np.float32)
    # span 1: starts [0, 0, 1, 0, 0] -> two distinct crops, begin first
    crops, index = unique_crops(wave, 23, 5)
    assert crops.shape == (2, 23) and index.tolist() == [0, 0, 1, 0, 0]
    assert crops[0, 0] == 0 and crops[1, 0] == 1


@settings(max_examples=150, deadline=None)
@given(
    n_samples=st.integers(0, 400),
    crop_len=st.integers(1, 120),
    n_crops=st.integers(1, 12),
    pad=st.sampled_from(["zeros", "loop"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_crop_properties(n_samples, crop_len, n_crops, pad, seed):
    wave = np.random.default_rng(seed).standard_normal(n_samples).astype(np.float32)
    starts = crop_starts(n_samples, crop_len, n_crops, seed)
    assert len(starts) == n_crops
    assert all(0 <= s <= max(0, n_samples - crop_len) for s in starts)

    crops = make_crops(wave, crop_len, n_crops, pad=pad, seed=seed)
    assert crops.shape == (n_crops, crop_len) and crops.dtype == np.float32
    for start, crop in zip(starts, crops):
        inside = wave[start : start + crop_len]
        np.testing.assert_array_equal(crop[: len(inside)], inside)  # every crop is a piece of the clip
        if pad == "zeros":
            assert not crop[len(inside) :].any()

    distinct, index = unique_crops(wave, crop_len, n_crops, pad=pad, seed=seed)
    np.testing.assert_array_equal(distinct[index], crops)
    assert len(distinct) == len(set(starts)) and sorted(set(index.tolist())) == list(range(len(distinct)))
