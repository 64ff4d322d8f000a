import pytest

from vidmem.core.errors import DataError, ParamsError
from vidmem.core.params import SplitConfig
from vidmem.data.split import split_sizes, split_videos

VIDEOS = [f"video{i}.webm" for i in range(1, 8001)]


def test_reference_split_of_the_dev_set():
    parts = split_videos(VIDEOS, SplitConfig(0.75, 0.125, 0.125, seed=42))
    assert {k: len(v) for k, v in parts.items()} == {"train": 6000, "val": 1000, "test": 1000}
    assert set().union(*parts.values()) == set(VIDEOS)
    assert not set(parts["train"]) & set(parts["test"])


def test_counts_and_fractions_agree():
    counts = split_videos(VIDEOS, SplitConfig(6000, 1000, 1000, seed=1))
    fractions = split_videos(VIDEOS, SplitConfig(0.75, 0.125, 0.125, seed=1))
    assert counts == fractions


def test_split_depends_on_the_seed_and_the_set_not_the_order():
    config = SplitConfig(0.6, 0.2, 0.2, seed=7)
    videos = VIDEOS[:50]
    assert split_videos(videos, config) == split_videos(list(reversed(videos)), config)
    assert split_videos(videos, config) != split_videos(videos, SplitConfig(0.6, 0.2, 0.2, 8))


def test_fractions_lose_no_video_to_rounding():
    assert sum(split_sizes(7, SplitConfig(0.75, 0.125, 0.125, 0)).values()) == 7


@pytest.mark.parametrize("config, error, message", [
    (SplitConfig(0.9, 0.2, 0.1, 0), ParamsError, "add up to more than 1"),
    (SplitConfig(6000, 0.5, 10, 0), ParamsError, "use whole counts"),
    (SplitConfig(9000, 1000, 1000, 0), DataError, "asks for 11000 videos"),
    (SplitConfig(0.98, 0.01, 0.01, 0), DataError, "split of 50 videos gives"),  # val rounds to 0
])
def test_impossible_splits_are_explained(config, error, message):
    with pytest.raises(error, match=message):
        split_videos(VIDEOS[:50] if config.train < 1 else VIDEOS, config)
