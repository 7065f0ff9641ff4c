"""Weights you pass are the weights you get: test_net vs a stale OUTPUT_DIR, the resume guard
of training, and the default OUTPUT_DIR."""

from __future__ import annotations

import os

import pytest
import torch

from fcos_core.config.checks import ConfigError
from fcos_core.engine import launcher
from fcos_core.engine.commands import test as test_command
from fcos_core.engine.launcher import load_for_test, train
from fcos_core.engine.run_info import apply_default_output_dir, config_name
from fcos_core.modeling.detector import build_detection_model
from fcos_core.utils.checkpoint import DetectronCheckpointer


def _checkpoint(cfg, path, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = build_detection_model(cfg).state_dict()
    torch.save({"model": state}, path)
    return state


def _stale_output_dir(cfg) -> dict[str, torch.Tensor]:
    """OUTPUT_DIR with a last_checkpoint of another model; returns that model's weights."""
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    stale = _checkpoint(cfg, os.path.join(cfg.OUTPUT_DIR, "model_final.pth"), seed=1)
    with open(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint"), "w") as f:
        f.write("model_final.pth\n")
    return stale


def _same(model, state) -> bool:
    return all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_load_for_test_prefers_model_weight(tiny_cfg, tmp_path):
    cfg = tiny_cfg()
    stale = _stale_output_dir(cfg)
    given = _checkpoint(cfg, tmp_path / "given.pth", seed=2)
    cfg.MODEL.WEIGHT = str(tmp_path / "given.pth")
    model = build_detection_model(cfg)
    load_for_test(cfg, model, None)
    assert _same(model, given)
    load_for_test(cfg, model, None, resume=True)
    assert _same(model, stale)
    cfg.MODEL.WEIGHT = ""
    load_for_test(cfg, model, None)  # nothing given: the output folder's checkpoint
    assert _same(model, stale)
    load_for_test(cfg, model, str(tmp_path / "given.pth"), resume=True)  # --ckpt wins
    assert _same(model, given)


def test_test_net_evaluates_model_weight_despite_stale_last_checkpoint(
    tiny_cfg, tmp_path, monkeypatch
):
    from fcos_core.engine.commands import standalone_parser

    cfg = tiny_cfg()
    _stale_output_dir(cfg)
    given = _checkpoint(cfg, tmp_path / "given.pth", seed=2)
    evaluated = []
    monkeypatch.setattr(launcher, "run_test", lambda c, model, d: evaluated.append(model))
    opts = ["DATASETS.REGISTER", cfg.DATASETS.REGISTER.__repr__(), "OUTPUT_DIR", cfg.OUTPUT_DIR,
            "MODEL.WEIGHT", str(tmp_path / "given.pth")]  # fmt: skip
    from tests.engine.conftest import TINY_YAML

    args = standalone_parser(test_command).parse_args(["--config-file", str(TINY_YAML), *opts])
    test_command.run(args)
    assert len(evaluated) == 1 and _same(evaluated[0], given)


def _one_iteration(tiny_cfg, *opts, output_dir):
    cfg = tiny_cfg("SOLVER.MAX_ITER", "1", "SOLVER.CHECKPOINT_PERIOD", "1", *opts,
                   output_dir=output_dir)  # fmt: skip
    return cfg


def test_training_refuses_another_runs_checkpoint(tiny_cfg, tmp_path):
    out = str(tmp_path / "shared")
    train(_one_iteration(tiny_cfg, output_dir=out), 0, False, config_name="run_a")
    assert torch.load(os.path.join(out, "model_final.pth"))["config_name"] == "run_a"
    with pytest.raises(ConfigError, match=r"of another run \(config 'run_a', this run's is "
                       r"'run_b'\): pass --fresh .* --resume"):  # fmt: skip
        train(_one_iteration(tiny_cfg, output_dir=out), 0, False, config_name="run_b")
    other_arch = _one_iteration(tiny_cfg, "MODEL.FCOS.NUM_CONVS", "2", output_dir=out)
    with pytest.raises(ConfigError, match=r"another architecture \(\d+ parameters differ: "):
        train(other_arch, 0, False, config_name="run_a")
    # the same run resumes (nothing left to train); --fresh trains again from iteration 0
    train(_one_iteration(tiny_cfg, output_dir=out), 0, False, config_name="run_a")
    fresh = _one_iteration(tiny_cfg, "MODEL.FCOS.NUM_CONVS", "2", output_dir=out)
    train(fresh, 0, False, resume="fresh", config_name="run_b")
    saved = torch.load(os.path.join(out, "model_final.pth"))
    assert saved["config_name"] == "run_b" and saved["iteration"] == 1


def test_forced_resume_takes_another_runs_checkpoint(tiny_cfg, tmp_path):
    out = str(tmp_path / "forced")
    train(_one_iteration(tiny_cfg, output_dir=out), 0, False, config_name="run_a")
    cfg = _one_iteration(tiny_cfg, output_dir=out)
    model = build_detection_model(cfg)
    checkpointer = DetectronCheckpointer(cfg, model, save_dir=out, save_to_disk=False)
    from fcos_core.engine.run_info import check_resume

    assert check_resume(checkpointer, model, "run_b", "force") is True
    assert check_resume(checkpointer, model, "run_b", "fresh") is False
    assert check_resume(checkpointer, model, "run_a", "auto") is True


def test_default_output_dir_is_per_config(tiny_cfg):
    cfg = tiny_cfg(output_dir=".")
    apply_default_output_dir(cfg, "configs/fcos/fcos_imprv_R_50_FPN_1x.yaml")
    assert cfg.OUTPUT_DIR == os.path.join("output", "fcos_imprv_R_50_FPN_1x")
    chosen = tiny_cfg(output_dir="runs/mine")
    apply_default_output_dir(chosen, "x.yaml")
    assert chosen.OUTPUT_DIR == "runs/mine"
    assert config_name(None) == "defaults"


def test_training_logs_the_preflight_report(tiny_cfg, tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="fcos_core")
    train(_one_iteration(tiny_cfg, output_dir=str(tmp_path / "pf")), 0, False)
    assert "Pre-flight: tiny_shapes_train: 16 images, " in caplog.text
    assert "Pre-flight: boxes per FPN level after resizing to 64: P3 " in caplog.text


def _train_command_cfg(monkeypatch, tmp_path, *opts):
    from fcos_core.engine.commands import standalone_parser
    from fcos_core.engine.commands import train as train_command
    from tests.engine.conftest import TINY_REGISTER, TINY_YAML

    seen = []
    monkeypatch.setattr(launcher, "train", lambda cfg, *a, **k: seen.append(cfg.clone()))
    monkeypatch.setattr(launcher, "run_test", lambda *a, **k: None)
    argv = ["--config-file", str(TINY_YAML), "DATASETS.REGISTER", f'("{TINY_REGISTER}",)',
            "OUTPUT_DIR", str(tmp_path / "o"), *opts]  # fmt: skip
    train_command.run(standalone_parser(train_command).parse_args(argv))
    return seen[0]


def test_train_command_scales_the_schedule(tiny_data_dir, tmp_path, monkeypatch):
    # tiny_fcos.yaml: batch 4, BASE_LR 0.01, MAX_ITER 6, STEPS (4,)
    cfg = _train_command_cfg(monkeypatch, tmp_path, "SOLVER.IMS_PER_BATCH", "2",
                             "SOLVER.REFERENCE_IMS_PER_BATCH", "4")  # fmt: skip
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER, tuple(cfg.SOLVER.STEPS)) == (0.005, 12, (8,))


def test_train_command_warns_about_an_unscaled_batch(tiny_data_dir, tmp_path, monkeypatch):
    cfg = _train_command_cfg(monkeypatch, tmp_path, "SOLVER.IMS_PER_BATCH", "2")
    assert cfg.SOLVER.MAX_ITER == 6
    log = (tmp_path / "o" / "log.txt").read_text()
    assert "SOLVER.IMS_PER_BATCH is 2 but the config's schedule (BASE_LR, MAX_ITER, STEPS) was " \
           "written for 4: add SOLVER.REFERENCE_IMS_PER_BATCH 4" in log  # fmt: skip
