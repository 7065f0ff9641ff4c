"""Checkpointer semantics of the original API: has_checkpoint / get_checkpoint_file ("" without a
checkpoint) / load(f, use_latest) / tag_last_checkpoint, with and without ``module.`` prefixes."""

from __future__ import annotations

import os
from collections import OrderedDict

import pytest
import torch
from torch import nn

from fcos_core.utils.checkpoint import Checkpointer
from fcos_core.utils.model_serialization import load_state_dict


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))


def _wrapped(data_parallel: bool) -> nn.Module:
    model = _model()
    return nn.DataParallel(model) if data_parallel else model


PREFIX_CASES = [(False, False), (True, False), (False, True), (True, True)]


def _assert_same_values(trained: nn.Module, fresh: nn.Module) -> None:
    for a, b in zip(trained.parameters(), fresh.parameters(), strict=True):
        assert a is not b and a.equal(b)


@pytest.mark.parametrize("trained_dp, fresh_dp", PREFIX_CASES)
def test_resume_from_last_checkpoint_across_module_prefixes(tmp_path, trained_dp, fresh_dp):
    trained, fresh = _wrapped(trained_dp), _wrapped(fresh_dp)
    Checkpointer(trained, save_dir=str(tmp_path), save_to_disk=True).save("checkpoint_file")
    again = Checkpointer(fresh, save_dir=str(tmp_path))
    assert again.has_checkpoint()
    assert again.get_checkpoint_file() == os.path.join(str(tmp_path), "checkpoint_file.pth")
    again.load()
    _assert_same_values(trained, fresh)


@pytest.mark.parametrize("trained_dp, fresh_dp", PREFIX_CASES)
def test_load_named_file_from_another_folder(tmp_path, trained_dp, fresh_dp):
    trained, fresh = _wrapped(trained_dp), _wrapped(fresh_dp)
    Checkpointer(trained, save_dir=str(tmp_path / "a"), save_to_disk=True).save("checkpoint_file")
    other = Checkpointer(fresh, save_dir=str(tmp_path / "b"))
    assert not other.has_checkpoint()
    assert other.get_checkpoint_file() == ""
    other.load(str(tmp_path / "a" / "checkpoint_file.pth"))
    _assert_same_values(trained, fresh)


def test_latest_wins_over_f_unless_use_latest_is_false(tmp_path):
    first, second = _model(), _model()
    Checkpointer(first, save_dir=str(tmp_path / "run"), save_to_disk=True).save("latest")
    Checkpointer(second, save_dir=str(tmp_path / "other"), save_to_disk=True).save("given")
    given = str(tmp_path / "other" / "given.pth")

    fresh = _model()
    Checkpointer(fresh, save_dir=str(tmp_path / "run")).load(given)
    _assert_same_values(first, fresh)
    fresh = _model()
    Checkpointer(fresh, save_dir=str(tmp_path / "run")).load(given, use_latest=False)
    _assert_same_values(second, fresh)


def test_no_checkpoint_and_no_file_keeps_the_initialisation(tmp_path):
    model = _model()
    before = [p.clone() for p in model.parameters()]
    assert Checkpointer(model, save_dir=str(tmp_path)).load() == {}
    assert Checkpointer(model).load(None) == {}
    assert all(a.equal(b) for a, b in zip(before, model.parameters()))


def test_last_checkpoint_naming_nothing_counts_as_none(tmp_path):
    model = _model()
    ckpt = Checkpointer(model, save_dir=str(tmp_path), save_to_disk=True)
    (tmp_path / "last_checkpoint").write_text("")
    assert ckpt.has_checkpoint() and ckpt.get_checkpoint_file() == ""
    assert ckpt.load() == {}
    saved = ckpt.save("model_0000001", iteration=1)
    ckpt.tag_last_checkpoint(saved)
    assert ckpt.get_checkpoint_file() == saved
    assert Checkpointer(_model(), save_dir=str(tmp_path)).load() == {"iteration": 1}


@pytest.mark.parametrize("data_parallel", [False, True])
def test_suffix_matching_loads_a_differently_nested_model(data_parallel):
    model = nn.Module()
    model.block1 = nn.Module()
    model.block1.layer1 = nn.Linear(2, 3)
    model.layer2 = nn.Linear(3, 2)
    model.res = nn.Module()
    model.res.layer2 = nn.Linear(3, 2)
    state = OrderedDict(
        [
            ("layer1.weight", torch.rand(3, 2)),
            ("layer1.bias", torch.rand(3)),
            ("layer2.weight", torch.rand(2, 3)),
            ("layer2.bias", torch.rand(2)),
            ("res.layer2.weight", torch.rand(2, 3)),
            ("res.layer2.bias", torch.rand(2)),
        ]
    )
    target = nn.DataParallel(model) if data_parallel else model
    load_state_dict(target, state)
    for loaded, stored in zip(target.state_dict().values(), state.values(), strict=True):
        assert loaded is not stored and loaded.equal(stored)
