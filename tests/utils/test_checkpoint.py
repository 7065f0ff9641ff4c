"""Checkpointer: atomic saves, resume through last_checkpoint, fallback, untrusted files."""

from __future__ import annotations

import logging
import os
import pickle
import random

import numpy as np
import pytest
import torch
from torch import nn

from fcos_core.config import cfg as global_cfg
from fcos_core.solver import WarmupMultiStepLR
from fcos_core.utils import safe_io
from fcos_core.utils.checkpoint import Checkpointer, DetectronCheckpointer
from fcos_core.utils.safe_io import CheckpointLoadError, UnsafeCheckpointError


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))


def _small(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))


def _training_state(seed: int = 0):
    model = _small(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = WarmupMultiStepLR(opt, [3], warmup_iters=2)
    return model, opt, sched


def _step(model, opt, sched, n: int) -> None:
    for _ in range(n):
        loss = model(torch.randn(5, 3)).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def test_save_and_resume_restores_everything(tmp_path):
    model, opt, sched = _training_state()
    _step(model, opt, sched, 4)
    ckpt = Checkpointer(model, opt, sched, save_dir=str(tmp_path), save_to_disk=True)
    path = ckpt.save("model_0000004", iteration=4)
    assert os.path.basename(path) == "model_0000004.pth"
    assert (tmp_path / "last_checkpoint").read_text().strip() == "model_0000004.pth"

    model2, opt2, sched2 = _training_state(seed=1)
    extra = Checkpointer(model2, opt2, sched2, save_dir=str(tmp_path)).load()
    assert extra == {"iteration": 4}
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert sched2.last_epoch == 4 and sched2.get_last_lr() == sched.get_last_lr()
    assert opt2.state_dict()["state"][0]["momentum_buffer"].equal(
        opt.state_dict()["state"][0]["momentum_buffer"]
    )


def test_resume_restores_rng_streams(tmp_path):
    model, opt, sched = _training_state()
    Checkpointer(model, opt, sched, save_dir=str(tmp_path), save_to_disk=True).save(
        "m", iteration=1
    )
    after_save = (torch.rand(3), float(np.random.rand()), random.random())
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    Checkpointer(_small(), save_dir=str(tmp_path)).load()
    after_load = (torch.rand(3), float(np.random.rand()), random.random())
    torch.testing.assert_close(after_load[0], after_save[0], rtol=0, atol=0)
    assert after_load[1:] == after_save[1:]


def test_no_checkpoint_starts_from_scratch(tmp_path):
    assert Checkpointer(_small(), save_dir=str(tmp_path)).load() == {}


def test_explicit_file_is_loaded_when_no_last_checkpoint(tmp_path):
    model = _small(0)
    torch.save({"model": model.state_dict(), "iteration": 7}, tmp_path / "w.pth")
    other = _small(5)
    extra = Checkpointer(other, save_dir=str(tmp_path / "out")).load(str(tmp_path / "w.pth"))
    assert extra == {"iteration": 7}
    assert other[0].weight.equal(model[0].weight)


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, opt, sched = _training_state()
    ckpt = Checkpointer(model, opt, sched, save_dir=str(tmp_path), save_to_disk=True)
    ckpt.save("model_0000002", iteration=2)
    good = (tmp_path / "model_0000002.pth").read_bytes()

    def dying_save(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(safe_io.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save("model_0000004", iteration=4)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save("model_0000002", iteration=99)  # overwriting an existing name is atomic too
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000002.pth"]
    (tmp_path / ".model_0000006.pth.abc.tmp").write_bytes(b"left by a SIGKILL")
    ckpt.save("model_0000006", iteration=6)  # the next save clears such leftovers
    assert sorted(os.listdir(tmp_path)) == [
        "last_checkpoint",
        "model_0000002.pth",
        "model_0000006.pth",
    ]
    (tmp_path / "model_0000006.pth").unlink()
    ckpt.tag_last_checkpoint(str(tmp_path / "model_0000002.pth"))
    assert (tmp_path / "model_0000002.pth").read_bytes() == good
    assert Checkpointer(_small(), save_dir=str(tmp_path)).load() == {"iteration": 2}


def test_corrupt_newest_falls_back_to_previous(tmp_path, caplog):
    model, opt, sched = _training_state()
    ckpt = Checkpointer(model, opt, sched, save_dir=str(tmp_path), save_to_disk=True)
    ckpt.save("model_0000002", iteration=2)
    os.utime(tmp_path / "model_0000002.pth", (1, 1))
    ckpt.save("model_0000004", iteration=4)
    data = (tmp_path / "model_0000004.pth").read_bytes()
    (tmp_path / "model_0000004.pth").write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        extra = Checkpointer(_small(), save_dir=str(tmp_path)).load()
    assert extra == {"iteration": 2}
    assert "model_0000004.pth" in caplog.text and "falling back" in caplog.text


def test_truncated_weight_file_names_the_file(tmp_path):
    torch.save({"model": _small().state_dict()}, tmp_path / "w.pth")
    data = (tmp_path / "w.pth").read_bytes()
    (tmp_path / "w.pth").write_bytes(data[:100])
    with pytest.raises(CheckpointLoadError, match=r"w\.pth.*truncated or corrupt"):
        Checkpointer(_small()).load(str(tmp_path / "w.pth"))
    with pytest.raises(CheckpointLoadError, match="not found: .*missing.pth"):
        Checkpointer(_small()).load(str(tmp_path / "missing.pth"))


class _Exploit:
    """Unpickling this calls os.system (a file write), as a malicious checkpoint would."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": _small().state_dict(), "x": _Exploit(str(marker))}, tmp_path / "evil.pth")
    with pytest.raises(UnsafeCheckpointError, match=r"refusing to load .*evil\.pth.*system"):
        Checkpointer(_small()).load(str(tmp_path / "evil.pth"))
    assert not marker.exists()


def test_crafted_pkl_is_refused_with_or_without_the_old_flag(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"blobs": {"conv1_w": np.zeros(1)}, "x": _Exploit(str(marker))}, f)
    for allow in (False, True):
        cfg = global_cfg.clone()
        cfg.MODEL.WEIGHT_ALLOW_PICKLE = allow
        with pytest.raises(
            UnsafeCheckpointError, match=r"evil\.pkl: .*references (posix|os)\.system"
        ):
            DetectronCheckpointer(cfg, _small()).load(str(tmp_path / "evil.pkl"))
    assert not marker.exists()


def test_pkl_loads_without_a_flag(tmp_path):
    # Changed on purpose (issue 14): .pkl files used to need MODEL.WEIGHT_ALLOW_PICKLE; the
    # allow-list unpickler makes them safe, so a plain path loads.
    weight = np.arange(64 * 3 * 7 * 7, dtype=np.float32).reshape(64, 3, 7, 7)
    with open(tmp_path / "w.pkl", "wb") as f:
        pickle.dump({"blobs": {"conv1_w": weight}}, f)

    class _Stem(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Module()
            self.stem.conv1 = nn.Conv2d(3, 64, 7, bias=False)

    model = _Stem()
    DetectronCheckpointer(global_cfg.clone(), model).load(str(tmp_path / "w.pkl"))
    assert model.stem.conv1.weight.detach().numpy().tobytes() == weight.tobytes()


def test_only_main_process_writes(tmp_path):
    ckpt = Checkpointer(_small(), save_dir=str(tmp_path), save_to_disk=False)
    assert ckpt.save("model_final", iteration=1) is None
    assert os.listdir(tmp_path) == []


def test_partial_fit_does_not_take_solver_state(tmp_path, caplog):
    class _Bigger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = _small(0)
            self.extra = nn.Linear(2, 2)

    model, opt, sched = _training_state()
    _step(model, opt, sched, 3)
    torch.save({"model": {"body." + k: v for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "iteration": 3},
               tmp_path / "pre.pth")  # fmt: skip
    target = _Bigger()
    opt2 = torch.optim.SGD(target.parameters(), lr=0.1, momentum=0.9)
    with caplog.at_level(logging.WARNING):
        extra = Checkpointer(target, opt2).load(str(tmp_path / "pre.pth"))
    assert extra == {}
    assert target.body[0].weight.equal(model[0].weight)
    assert opt2.state_dict()["state"] == {}
    assert "does not fit the model exactly" in caplog.text


def test_unknown_catalog_name_is_a_clear_error():
    with pytest.raises(CheckpointLoadError, match="not in the catalog"):
        DetectronCheckpointer(global_cfg.clone(), _small()).load(
            "catalog://ImageNetPretrained/MSRA/R-51"
        )


def test_cache_url_downloads_once(tmp_path):
    from fcos_core.utils.model_zoo import cache_url, url_to_filename

    src = tmp_path / "src" / "weights.pth"
    src.parent.mkdir()
    torch.save({"model": _small().state_dict()}, src)
    cached = cache_url(src.as_uri(), model_dir=str(tmp_path / "cache"), progress=False)
    assert cached == str(tmp_path / "cache" / "weights.pth")
    assert open(cached, "rb").read() == src.read_bytes()
    src.unlink()  # a second call uses the cache
    assert cache_url(src.as_uri(), model_dir=str(tmp_path / "cache"), progress=False) == cached
    assert url_to_filename("https://host/s/abc/download#FCOS_R_50.pth") == "FCOS_R_50.pth"
