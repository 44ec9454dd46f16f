"""The meta device (shapes without data) and minidl.summary."""
import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.meta import MetaArray


def test_meta_context_builds_parameters_without_memory():
    with minidl.device("meta"):
        layer = nn.Linear(100_000, 50_000)  # 20 GB of float32 on a real device
        assert minidl.zeros(3).device == "meta"
    assert isinstance(layer.weight.array, MetaArray)
    assert layer.weight.shape == (50_000, 100_000) and layer.weight.device == "meta"
    assert minidl.zeros(3).device == "cpu"  # the context ended


def test_ops_infer_shapes_and_dtypes_on_meta():
    a = minidl.zeros(4, 1, 3, device="meta")
    b = minidl.zeros(5, 3, dtype=np.float64, device="meta")
    assert (a + b).shape == (4, 5, 3) and (a + b).dtype == np.float64
    assert (a * 2.0).dtype == np.float32
    assert (a.sum(2, keepdim=True)).shape == (4, 1, 1)
    assert a.max(0).values.shape == (1, 3) and a.max(0).indices.dtype == np.int64
    assert (b @ b.T).shape == (5, 5)
    assert (minidl.zeros(2, 7, 5, 3, device="meta") @ b.T).shape == (2, 7, 5, 5)
    assert a.reshape(-1, 3).shape == (4, 3)
    assert a.permute(2, 0, 1).shape == (3, 4, 1)
    assert a[1:, 0].shape == (3, 3)
    assert minidl.concatenate([b, b], dim=1).shape == (5, 6)
    assert minidl.stack([b, b], dim=0).shape == (2, 5, 3)
    assert a.softmax(-1).relu().exp().shape == a.shape
    with pytest.raises(ValueError, match="do not fit"):
        a @ b


def test_meta_tensors_refuse_to_give_data():
    t = minidl.zeros(2, 2, device="meta")
    with pytest.raises(RuntimeError, match="no data"):
        t.numpy()
    with pytest.raises(RuntimeError, match="no data"):
        t.to("cpu")


def test_same_shape_checks_run_on_meta():
    layer = nn.Linear(3, 4).to("meta")
    assert layer(minidl.zeros(2, 3, device="meta")).shape == (2, 4)
    with pytest.raises(ValueError, match=r"expected input of shape \(\*, 3\), got \(2, 5\)"):
        layer(minidl.zeros(2, 5, device="meta"))


def test_summary_counts_match_a_real_model_and_leave_it_untouched():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(),
                          nn.Sequential(nn.Linear(8, 3), nn.Dropout(0.1)))
    before = model.state_dict()
    result = minidl.summary(model, (3, 4), verbose=False)
    assert result.total_params == sum(p.numel() for p in model.parameters()) == 12 * 8 + 8 + 8 * 3 + 3
    assert result.total_macs == 12 * 8 + 8 * 3
    real = model(minidl.randn(1, 3, 4))
    assert result.rows[0]["output_shape"] == real.shape == (1, 3)
    assert [r["name"] for r in result.rows] == ["", "0", "1", "2", "3", "3.0", "3.1"]
    assert [r["depth"] for r in result.rows] == [0, 1, 1, 1, 1, 2, 2]
    assert all(p.device == "cpu" for p in model.parameters())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    assert "Total params: 131" in str(result)


def test_summary_names_the_layer_that_cannot_take_its_input():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Linear(9, 2))
    from minidl.utils.summary import LayerError
    with pytest.raises(LayerError, match=r"layer '2' \(Linear\(in_features=9.*\(1, 8\)"):
        minidl.summary(model, (12,), verbose=False)


def test_summary_on_cpu_runs_the_real_forward():
    model = nn.Sequential(nn.Linear(4, 2))
    result = minidl.summary(model, (4,), device="cpu", batch_size=5, verbose=False)
    assert result.rows[-1]["output_shape"] == (5, 2)


def _build_on_meta(module_name):
    import importlib
    with minidl.device("meta"):
        return importlib.import_module(f"models.{module_name}").build()


def test_the_course_exercise_shapes_and_parameter_counts():
    model = _build_on_meta("exercise_cnn")
    result = minidl.summary(model, (3, 386, 386), verbose=False)
    leaves = [row for row in result.rows if row["leaf"]]
    assert [row["output_shape"][1:] for row in leaves] == [
        (64, 384, 384), (64, 128, 128), (256, 126, 126), (512, 126, 126), (512, 42, 42),
        (903_168,), (2048,), (1000,)]
    assert [row["params"] for row in leaves if row["params"]] == [1_728, 147_456, 131_072, 1_849_688_064, 2_048_000]
    assert result.total_params == 1_852_016_320
    # a multiply-accumulate per weight per output position: k*k*C_in for each conv output value
    assert leaves[0]["macs"] == 64 * 384 * 384 * 3 * 3 * 3
    assert leaves[6]["macs"] == 1_849_688_064


def test_the_exercise_summary_stays_small_in_memory():
    """The 7 GB model is summarised by scripts/summarize.py in a fresh process under 500 MB resident."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # VmHWM is this process's peak resident memory (ru_maxrss would carry pytest's over the exec)
    program = ("import sys; sys.argv[1:] = ['exercise_cnn', '--input', '3,386,386']; "
               "sys.path.insert(0, 'scripts'); import summarize; summarize.main(); "
               "print('peak KiB', open('/proc/self/status').read().split('VmHWM:')[1].split()[0])")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    assert "Total params: 1,852,016,320" in done.stdout
    peak_mb = int(done.stdout.rsplit("peak KiB", 1)[1]) / 1024
    assert peak_mb < 500, f"summary peaked at {peak_mb:.0f} MB"


@pytest.mark.parametrize("module_name", ["lenet", "fashion_cnn", "tiled_cnn", "local_cnn"])
def test_summary_of_the_cnns_equals_the_real_model(module_name):
    import importlib
    minidl.manual_seed(0)
    model = importlib.import_module(f"models.{module_name}").build()
    result = minidl.summary(model, (1, 28, 28), batch_size=2, verbose=False)
    assert result.total_params == sum(p.numel() for p in model.parameters())
    real_shapes = {}
    for name, module in model.named_modules():
        module.register_forward_hook(lambda m, args, out, name=name: real_shapes.setdefault(name, out.shape))
    model.eval()
    model(minidl.randn(2, 1, 28, 28))
    assert {row["name"]: row["output_shape"] for row in result.rows} == real_shapes
    for row in result.rows:
        assert row["params"] == sum(p.numel() for p in model.get_submodule(row["name"]).parameters()) \
            if row["name"] else result.total_params


def test_summary_names_the_layer_whose_feature_map_shrinks_below_its_kernel():
    from minidl.utils.summary import LayerError
    model = _build_on_meta("exercise_cnn")
    with pytest.raises(LayerError, match=r"layer '4' \(MaxPool2d.*\(1, 512, 1, 1\).*kernel \(3, 3\) is larger"):
        minidl.summary(model, (3, 12, 12), verbose=False)
