"""Safe reading of weights: Caffe2 .pkl through the allow-list unpickler (no code runs, no flag
needed), NumPy values in .pth solver states, and tools/remove_solver_states.py on official-style
checkpoints."""

from __future__ import annotations

import builtins
import importlib.util
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fcos_core.utils.safe_io import (
    CheckpointLoadError,
    UnsafeCheckpointError,
    load_pkl,
    load_pth,
)

REPO = Path(__file__).resolve().parents[2]


# A Python 2 pickle as Detectron wrote its .pkl files: protocol 2, byte-string keys and array data
# (BINSTRING), numpy.core globals. Built opcode by opcode, since Python 3 cannot write one.
def _short_str(b: bytes) -> bytes:
    return b"U" + bytes([len(b)]) + b


def _int(v: int) -> bytes:
    return b"J" + struct.pack("<i", v)


def _py2_array(a: np.ndarray) -> bytes:
    out = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _short_str(b"b")
    out += b"\x87R(K\x01(" + b"".join(_int(d) for d in a.shape) + b"t"
    out += b"cnumpy\ndtype\n" + _short_str(a.dtype.str[1:].encode()) + b"K\x00K\x01\x87R"
    out += b"(K\x03" + _short_str(b"<") + b"NNN" + _int(-1) + _int(-1) + b"K\x00tb"
    data = a.tobytes()
    return out + b"\x89T" + struct.pack("<i", len(data)) + data + b"tb"


def _py2_pickle(blobs: dict[str, np.ndarray], wrap: bool) -> bytes:
    inner = b"}(" + b"".join(_short_str(k.encode()) + _py2_array(v) for k, v in blobs.items())
    inner += b"u"
    return b"\x80\x02" + (b"}" + _short_str(b"blobs") + inner + b"s" if wrap else inner) + b"."


BLOBS = {
    "conv1_w": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
    "res_conv1_bn_s": np.array([0.5, 2.0], np.float32),
}


@pytest.mark.parametrize("wrap", [True, False], ids=["blobs_key", "flat"])
def test_python2_detectron_pickle_loads(tmp_path, wrap):
    path = tmp_path / "R-50.pkl"
    path.write_bytes(_py2_pickle(BLOBS, wrap))
    loaded = load_pkl(str(path))
    blobs = loaded["blobs"] if wrap else loaded
    assert sorted(blobs) == sorted(BLOBS)
    for name, value in BLOBS.items():
        assert blobs[name].dtype == value.dtype and np.array_equal(blobs[name], value)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_python3_numpy_pickle_loads(tmp_path, protocol):
    data = {"blobs": dict(BLOBS, lr=np.float64(0.01)), "names": ["a", ("b", 1)]}
    with open(tmp_path / "w.pkl", "wb") as f:
        pickle.dump(data, f, protocol=protocol)
    loaded = load_pkl(str(tmp_path / "w.pkl"))
    assert loaded["names"] == ["a", ("b", 1)] and loaded["blobs"]["lr"] == 0.01
    assert np.array_equal(loaded["blobs"]["conv1_w"], BLOBS["conv1_w"])


class _Reduce:
    """Pickles as a call of ``fn(*args)``: what a malicious weights file does."""

    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


@pytest.mark.parametrize(
    "fn, refused",
    [(os.system, r"(posix|os)\.system"), (builtins.eval, r"(__builtin__|builtins)\.eval")],
    ids=["os.system", "eval"],
)
def test_crafted_pkl_is_refused_and_runs_nothing(tmp_path, fn, refused):
    marker = tmp_path / "pwned"
    payload = f"touch {marker}" if fn is os.system else f"open({str(marker)!r}, 'w')"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": {"conv1_w": np.zeros(1)}, "x": _Reduce(fn, payload)}, f, protocol=2)
    with pytest.raises(UnsafeCheckpointError, match=rf"refusing to load .*evil\.pkl: .*{refused}"):
        load_pkl(str(path))
    assert not marker.exists()


def test_truncated_pkl_names_the_file(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(_py2_pickle(BLOBS, wrap=True)[:60])
    with pytest.raises(CheckpointLoadError, match=r"cut\.pkl: the file is truncated or corrupt"):
        load_pkl(str(path))


def _official_style_checkpoint() -> dict:
    """What the original Checkpointer saved: a DDP model state plus solver states, here with the
    NumPy values such states can hold."""
    model = {"module.backbone.body.stem.conv1.weight": torch.randn(4, 3, 7, 7)}
    optimizer = {"state": {0: {"momentum_buffer": torch.randn(4, 3, 7, 7)}},
                 "param_groups": [{"lr": np.float64(0.01), "params": [0]}]}  # fmt: skip
    scheduler = {"milestones": np.array([60000, 80000]), "last_epoch": np.int64(90000)}
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler, "iteration": 90000}


def test_pth_with_numpy_solver_state_loads_weights_only(tmp_path):
    torch.save(_official_style_checkpoint(), tmp_path / "FCOS.pth")
    loaded = load_pth(str(tmp_path / "FCOS.pth"))
    assert loaded["optimizer"]["param_groups"][0]["lr"] == 0.01
    assert list(loaded["scheduler"]["milestones"]) == [60000, 80000]


def test_refused_pth_does_not_advise_a_tool_that_refuses_it_too(tmp_path):
    torch.save({"model": {}, "x": _Reduce(os.system, "true")}, tmp_path / "evil.pth")
    with pytest.raises(UnsafeCheckpointError) as info:
        load_pth(str(tmp_path / "evil.pth"))
    assert "evil.pth" in str(info.value) and "remove_solver_states" not in str(info.value)


def _remove_solver_states(argv: list[str]) -> None:
    spec = importlib.util.spec_from_file_location(
        "remove_solver_states", REPO / "tools" / "remove_solver_states.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    old = sys.argv
    sys.argv = ["remove_solver_states.py", *argv]
    try:
        module.main()
    finally:
        sys.argv = old


def test_remove_solver_states_on_an_official_style_checkpoint(tmp_path, capsys):
    original = _official_style_checkpoint()
    torch.save(original, tmp_path / "FCOS_imprv_R_50_FPN_1x.pth")
    _remove_solver_states([str(tmp_path / "FCOS_imprv_R_50_FPN_1x.pth"), str(tmp_path / "w.pth")])
    out = torch.load(tmp_path / "w.pth", weights_only=True)
    assert list(out) == ["model"]
    for key, value in original["model"].items():
        assert out["model"][key].equal(value)
    assert "dropped: iteration, optimizer, scheduler" in capsys.readouterr().out
