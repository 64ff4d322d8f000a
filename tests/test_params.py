import pytest

from vidmem.core.errors import ParamsError
from vidmem.core.params import TrainConfig, as_float, as_int, backend_params, load_params

from conftest import REPO


def test_repo_params_are_valid_and_lr_is_top_level():
    params = load_params(REPO / "params.yaml")
    config = TrainConfig.from_params(params)
    assert config.lr == pytest.approx(1e-4)
    assert (config.hidden_size, config.num_layers, config.epochs, config.batch_size) == \
        (1024, 3, 100, 1000)
    for name in params["backends"]:
        assert backend_params(params, name)["kind"]


def test_float_written_by_dvc_exp_run_is_read_as_a_number(tmp_path):
    # `dvc exp run -S lr=1e-5` writes exactly this; PyYAML would return the string '1e-05'.
    path = tmp_path / "params.yaml"
    path.write_text("lr: 1e-05\nepochs: '3'\n")
    params = load_params(path)
    assert as_float(params["lr"], "lr") == pytest.approx(1e-5)
    assert as_int(params["epochs"], "epochs") == 3


@pytest.mark.parametrize("value", ["abc", None, True, float("nan")])
def test_bad_numbers_name_the_key(value):
    with pytest.raises(ParamsError, match="'lr'"):
        as_float(value, "lr")


def test_whole_numbers_required_for_counts():
    with pytest.raises(ParamsError, match="whole number"):
        as_int(2.5, "epochs")


def test_unknown_backend_section_is_a_clear_error():
    with pytest.raises(ParamsError, match="backend.nope"):
        backend_params({"backend": {"a": {}}}, "nope")


def test_data_keys_are_read_only_when_used():
    """A stage that uses some of `data.*` (extract: captions, on_bad_input, format) records only
    those in its trace, so dvc.yaml can declare just them."""
    from vidmem.core.params import DataConfig
    from vidmem.core.trace import TrackedParams

    read: set[str] = set()
    params = TrackedParams({"data": {"videos_dir": "v", "ground_truth": "g.csv",
                                     "captions": "c.txt", "on_bad_input": "skip"}}, read)
    data = DataConfig.from_params(params)
    assert (data.captions, data.on_bad_input, data.format) == ("c.txt", "skip", "mediaeval2018")
    assert read == {"data.captions", "data.on_bad_input", "data.format"}
    assert data.as_dict()["videos_dir"] == "v" and "data.videos_dir" in read
