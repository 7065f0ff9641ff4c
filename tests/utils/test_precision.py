"""The one precision vocabulary: native-bf16 detection, "auto" per device, old spellings refused."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.engine.amp import amp_dtype
from fcos_core.utils import precision
from fcos_core.utils.precision import (
    PRECISIONS,
    autocast_dtype,
    check_precision,
    cpu_capability,
    cpu_has_native_bf16,
)

OLD_SPELLINGS = ("", "bf16", "fp16", "fp32")
ALLOWED = "float32, bfloat16, float16, auto"


def test_the_vocabulary_is_torchs_dtype_names_plus_auto():
    assert PRECISIONS == ("float32", "bfloat16", "float16", "auto")
    for name, dtype in precision.DTYPES.items():
        assert getattr(torch, name) is dtype


@pytest.mark.parametrize(
    "flags, native",
    [
        ({"avx512_bf16": True}, True),
        ({"amx_bf16": True, "amx_tile": True}, True),
        ({"avx512_f": True, "avx512_bf16": False, "amx_bf16": False}, False),
        ({"avx2": True, "avx512_vnni": True}, False),
        ({}, False),
    ],
)
def test_native_bf16_comes_from_the_feature_flags(flags, native):
    assert cpu_has_native_bf16(flags) is native


def test_native_bf16_never_guesses_from_the_cpu_name():
    assert not cpu_has_native_bf16({"cpu_name": "Intel Xeon Sapphire Rapids AMX bf16"})


def test_cpuinfo_is_read_when_torch_cannot_say(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse avx512f avx512_bf16 vaes\n"
    )

    def broken() -> dict:
        raise RuntimeError("no cpuinfo")

    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", broken, raising=False)
    monkeypatch.setattr(precision, "CPUINFO", str(cpuinfo))
    assert cpu_capability() == {f: True for f in ("fpu", "sse", "avx512f", "avx512_bf16", "vaes")}
    cpuinfo.write_text("flags\t\t: fpu sse avx512f\n")
    assert cpu_capability()["avx512f"] and not cpu_has_native_bf16(cpu_capability())
    monkeypatch.setattr(precision, "CPUINFO", str(tmp_path / "missing"))
    assert cpu_capability() == {}


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="needs /proc/cpuinfo")
def test_torch_and_proc_cpuinfo_agree_on_this_cpu():
    with open("/proc/cpuinfo") as f:
        flags = next(line for line in f if line.startswith("flags")).split(":")[1].split()
    expected = "avx512_bf16" in flags or "amx_bf16" in flags
    assert cpu_has_native_bf16(cpu_capability()) is expected


@pytest.mark.parametrize(
    "value, device, native, expected",
    [
        ("auto", "cpu", True, torch.bfloat16),
        ("auto", "cpu", False, None),
        ("auto", "cuda", False, torch.float16),
        ("auto", "cuda", True, torch.float16),
        ("float32", "cpu", True, None),
        ("float32", "cuda", True, None),
        ("bfloat16", "cpu", False, torch.bfloat16),
        ("float16", "cuda", True, torch.float16),
    ],
)
def test_autocast_dtype_resolution(value, device, native, expected):
    assert autocast_dtype("AMP.DTYPE", value, device, native_bf16=native) == expected
    cfg = default_cfg.clone()
    cfg.AMP.ENABLED, cfg.AMP.DTYPE = True, value
    assert amp_dtype(cfg, device, native_bf16=native) == expected
    cfg.AMP.ENABLED = False
    assert amp_dtype(cfg, device, native_bf16=native) is None


def test_auto_without_native_bf16_says_why_once(caplog):
    precision._log_once.cache_clear()
    with caplog.at_level(logging.INFO, logger="fcos_core.utils.precision"):
        for _ in range(3):
            assert autocast_dtype("AMP.DTYPE", "auto", "cpu", native_bf16=False) is None
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "AMP.DTYPE auto: float32, this CPU has no native bfloat16 (AMX-BF16 / AVX512-BF16)"
    ]


def test_auto_follows_the_detected_capability(monkeypatch):
    for native, expected in ((True, torch.bfloat16), (False, None)):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda native=native: native)
        assert autocast_dtype("TEST.FAST_PATH_AUTOCAST", "auto", "cpu") == expected


@pytest.mark.parametrize("old", OLD_SPELLINGS)
@pytest.mark.parametrize("key", ["AMP.DTYPE", "TEST.FAST_PATH_AUTOCAST"])
def test_old_spellings_are_refused_naming_key_value_and_choices(key, old):
    with pytest.raises(ValueError) as info:
        check_precision(key, old)
    assert str(info.value).startswith(f"{key} must be one of {ALLOWED}, got {old!r}.")


@pytest.mark.parametrize("old", OLD_SPELLINGS)
def test_amp_dtype_refuses_old_spellings_even_when_amp_is_off(old):
    cfg = default_cfg.clone()
    cfg.AMP.DTYPE = old
    for enabled in (True, False):
        cfg.AMP.ENABLED = enabled
        with pytest.raises(ValueError, match=f"AMP.DTYPE must be one of {ALLOWED}, got {old!r}"):
            amp_dtype(cfg, "cpu")


def test_defaults_use_the_vocabulary():
    assert default_cfg.AMP.DTYPE == "auto"
    assert default_cfg.TEST.FAST_PATH_AUTOCAST == "float32"
