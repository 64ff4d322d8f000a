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


def test_params_parses_each_section_once_when_first_used():
    """One typed object per stage: a section is parsed on first use and kept (the same object
    every time), and the tracer records only the keys of the sections the stage used."""
    from vidmem.core.params import Params
    from vidmem.core.trace import TrackedParams

    read: set[str] = set()
    params = Params(TrackedParams(load_params(REPO / "params.yaml"), read))
    assert not read
    train = params.train
    assert params.train is train and train.lr == pytest.approx(1e-4)
    assert read and all(not key.startswith(("decode.", "data.", "backend.")) for key in read)
    before = set(read)
    assert params.backend_section("captions")["kind"] == "captions"
    assert params.backend_section("captions") is params.backend_section("captions")
    assert read - before == {"backend.captions.kind"}


# Raw params are read only by section parsers (a `from_params` of core/params.py, or a section
# type handed to `Params.parsed`) and at a stage's edge (run_stage).
RAW_READERS = {"lookup", "load_params", "backend_params", "backend_names"}
EDGES = {"src/vidmem/core/params.py", "src/vidmem/core/cli.py"}


def _raw_reads(path) -> list[str]:
    """Calls in `path` that read params.yaml's raw mapping outside a `from_params` parser."""
    import ast

    found = []

    def visit(node, in_parser: bool) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            in_parser = in_parser or node.name == "from_params"
        if isinstance(node, ast.Call) and not in_parser:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else \
                func.attr if isinstance(func, ast.Attribute) else None
            if name in RAW_READERS or (name == "from_params" and not (
                    isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                    and func.value.id == "InputSpec")):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {name}()")
        for child in ast.iter_child_nodes(node):
            visit(child, in_parser)

    visit(ast.parse(path.read_text()), False)
    return found


def test_only_section_parsers_and_the_edge_read_raw_params():
    """Stages, predict, the pipeline helper and the libraries below take `Params` and its typed
    sections; none looks a key up in the raw mapping (InputSpec parses the backend section that
    vidmem.backends.backend_config hands it)."""
    files = [p for p in (REPO / "src" / "vidmem").rglob("*.py")
             if str(p.relative_to(REPO)) not in EDGES] + sorted((REPO / "stages").glob("*.py"))
    offenders = [hit for path in files for hit in _raw_reads(path)]
    assert not offenders, offenders


def test_the_raw_reads_guard_finds_a_planted_lookup(tmp_path):
    """The guard above can fail: a stage that looks a key up itself is found."""
    planted = REPO / "stages" / "_planted_lookup_test.py"
    planted.write_text("from vidmem.core.params import lookup\n\n"
                       "def main(args, params):\n    return lookup(params, 'lr')\n")
    try:
        assert _raw_reads(planted) == ["stages/_planted_lookup_test.py:4 lookup()"]
    finally:
        planted.unlink()
