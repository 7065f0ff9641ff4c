"""SLURM's variables -> torch.distributed's env:// variables; node list parsing."""

from __future__ import annotations

import pytest

from fcos_core.utils.slurm import apply_slurm_environment, expand_nodelist


@pytest.mark.parametrize(
    "nodelist, hosts",
    [
        ("node[01-03],gpu5", ["node01", "node02", "node03", "gpu5"]),
        ("a[1,3-4]-ib,b", ["a1-ib", "a3-ib", "a4-ib", "b"]),
        ("gpu-[008-010]", ["gpu-008", "gpu-009", "gpu-010"]),
        ("127.0.0.1", ["127.0.0.1"]),
        ("x[7]", ["x7"]),
    ],
)
def test_expand_nodelist(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize("bad", ["node[01-03", "node[a-b]", "n[1-2]x[3-4]"])
def test_bad_nodelist_names_the_list(bad):
    with pytest.raises(ValueError, match="SLURM node list"):
        expand_nodelist(bad)


def test_srun_task_variables():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
           "SLURM_NODELIST": "node[03-04]", "SLURM_JOB_ID": "123456"}  # fmt: skip
    assert apply_slurm_environment(env) is True
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == ("5", "8", "1")
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("node03", str(20000 + 123456 % 20000))


def test_step_variables_win_and_existing_ones_are_kept():
    env = {"SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "2",
           "SLURM_NODELIST": "a[1-4]", "SLURM_STEP_NODELIST": "a3",
           "MASTER_PORT": "29500"}  # fmt: skip
    apply_slurm_environment(env)
    assert (env["WORLD_SIZE"], env["MASTER_ADDR"], env["MASTER_PORT"]) == ("2", "a3", "29500")
    torchrun = {"SLURM_PROCID": "0", "RANK": "3"}  # torchrun inside srun: its variables win
    assert apply_slurm_environment(torchrun) is False and torchrun == {
        "SLURM_PROCID": "0",
        "RANK": "3",
    }
    assert apply_slurm_environment({}) is False
