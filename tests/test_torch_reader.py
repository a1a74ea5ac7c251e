"""The restricted PyTorch-file reader: round trips against torch.save, refusals, broken files."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest

from keras_facehallu.nets.torch_reader import (
    ScriptObject,
    TorchFileError,
    load_torch_file,
    read_torch_state_dict,
)

# What torch.save writes for a 2-element float tensor: _rebuild_tensor_v2(persistent storage
# ("storage", FloatStorage, "0", "cpu", 2), offset 0, size (2,), stride (1,), False, None).
_TENSOR_PICKLE = (
    b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
    b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQK\x00K\x02"
    b"\x85K\x01\x85\x89NtR."
)


def _zip_with_pickle(path, payload: bytes, extra: dict[str, bytes] | None = None):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        for name, data in (extra or {}).items():
            zf.writestr(f"archive/{name}", data)
    return path


def test_forbidden_global_is_refused_and_not_called(tmp_path):
    marker = tmp_path / "pwned"
    # GLOBAL os.system, called by REDUCE with one argument: a plain pickle would run it.
    command = f"touch {marker}".encode()
    payload = (b"\x80\x02cos\nsystem\nq\x00X" + len(command).to_bytes(4, "little") + command
               + b"q\x01\x85q\x02Rq\x03.")
    path = _zip_with_pickle(tmp_path / "evil.pt", payload)
    with pytest.raises(TorchFileError, match=r"evil\.pt.*'os\.system'"):
        read_torch_state_dict(path)
    assert not marker.exists()


def test_builtin_eval_is_refused(tmp_path):
    payload = pickle.dumps(eval, protocol=4)  # STACK_GLOBAL builtins.eval
    path = _zip_with_pickle(tmp_path / "eval.pt", payload)
    with pytest.raises(TorchFileError, match="builtins.eval"):
        load_torch_file(path)


def test_truncated_zip_errors_clearly(tmp_path):
    good = _zip_with_pickle(tmp_path / "good.pt", pickle.dumps({"a": 1}, protocol=2))
    data = good.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(TorchFileError, match=r"truncated\.pt.*not a readable zip"):
        read_torch_state_dict(bad)


def test_missing_file_and_missing_storage(tmp_path):
    with pytest.raises(TorchFileError, match="no such file"):
        read_torch_state_dict(tmp_path / "absent.pt")
    # A tensor whose storage entry data/0 is absent from the archive.
    payload = _TENSOR_PICKLE
    path = _zip_with_pickle(tmp_path / "nostorage.pt", payload)
    with pytest.raises(TorchFileError, match="data/0.*missing"):
        read_torch_state_dict(path)
    # The same pickle with a storage that holds fewer bytes than the tensor needs.
    path = _zip_with_pickle(tmp_path / "short.pt", payload, {"data/0": b"\0" * 4})
    with pytest.raises(TorchFileError, match="holds 1 FloatStorage elements, expected 2"):
        read_torch_state_dict(path)


def test_handmade_tensor_without_torch(tmp_path):
    payload = _TENSOR_PICKLE
    values = np.array([1.5, -2.0], "<f4")
    path = _zip_with_pickle(tmp_path / "t.pt", payload, {"data/0": values.tobytes()})
    np.testing.assert_array_equal(load_torch_file(path), values)


def test_round_trip_against_torch_save(tmp_path):
    torch = pytest.importorskip("torch", reason="torch (a test extra) is needed to write .pt files")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {
        "f32": torch.randn(3, 4, generator=torch.Generator().manual_seed(0)),
        "f64": torch.linspace(0, 1, 5, dtype=torch.float64),
        "f16": torch.tensor([0.5, -1.25], dtype=torch.float16),
        "bf16": torch.tensor([1.0, -3.5, 0.15625], dtype=torch.bfloat16),
        "i64": torch.tensor([1, -2, 3]),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False]),
        "transposed": base.t(),  # non-contiguous strides
        "sliced": base[1:, 2:5],  # storage offset into a shared storage
        "scalar": torch.tensor(7.0),
        "nested": {"w": torch.ones(2, 2)},
    }
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    path = tmp_path / "state.pt"
    torch.save({**state, "model": model.state_dict()}, path)
    got = read_torch_state_dict(path)
    for name, tensor in state.items():
        if name == "nested":
            np.testing.assert_array_equal(got["nested.w"], np.ones((2, 2), np.float32))
            continue
        want = tensor.float().numpy() if name == "bf16" else tensor.numpy()
        np.testing.assert_array_equal(got[name], want, err_msg=name)
        assert got[name].shape == tuple(tensor.shape)
    for name, tensor in model.state_dict().items():
        np.testing.assert_array_equal(got[f"model.{name}"], tensor.numpy())


def test_torchscript_module_becomes_attribute_holder(tmp_path):
    torch = pytest.importorskip("torch", reason="torch (a test extra) is needed to write .pt files")
    module = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()))
    path = tmp_path / "script.pt"
    module.save(str(path))
    root = load_torch_file(path)
    assert isinstance(root, ScriptObject)
    assert root.torch_type.startswith("__torch__.")
    got = read_torch_state_dict(path)
    np.testing.assert_array_equal(got["0.weight"], module.state_dict()["0.weight"].numpy())
    np.testing.assert_array_equal(got["0.bias"], module.state_dict()["0.bias"].numpy())


def test_plain_pickle_file_is_not_a_torch_zip(tmp_path):
    path = tmp_path / "plain.pkl"
    buffer = io.BytesIO()
    pickle.dump({"a": 1}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(TorchFileError, match="legacy"):
        read_torch_state_dict(path)
