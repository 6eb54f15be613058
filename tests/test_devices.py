"""The machine-dependent defaults: dtype by device and memory, the container's memory limit."""

from __future__ import annotations

import os

import pytest
import torch

from reranker import devices


def test_the_default_dtype_is_float32_on_a_cpu_only_with_the_memory_for_both_models(monkeypatch):
    monkeypatch.delenv("RERANKER_DTYPE")
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(devices, "memory_limit", lambda: 24 * 2**30)
    assert devices.default_dtype(cpu) == torch.float32 and devices.default_dtype(cuda) == torch.bfloat16
    monkeypatch.setattr(devices, "memory_limit", lambda: 16 * 2**30)  # a free CPU Space
    assert devices.default_dtype(cpu) == torch.bfloat16
    monkeypatch.setenv("RERANKER_DTYPE", "float32")  # the setting wins
    assert devices.default_dtype(cpu) == torch.float32 and devices.default_dtype(cuda) == torch.float32


def test_the_memory_limit_is_the_machines_or_a_lower_container_limit(tmp_path, monkeypatch):
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < devices.memory_limit() <= physical
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    monkeypatch.setattr(devices, "CGROUP_MEMORY_LIMITS", (str(v2), str(v1)))
    assert devices.memory_limit() == physical  # neither file
    v2.write_text("max\n")
    assert devices.memory_limit() == physical  # no limit
    v1.write_text(f"{physical // 2}\n")  # below any machine's memory, whatever this one has
    assert devices.memory_limit() == physical // 2


def test_a_dtype_is_given_as_itself_or_its_name_and_any_other_name_is_refused_with_the_choices():
    assert devices.parse_dtype(torch.float16) is torch.float16
    assert devices.parse_dtype("bfloat16") is torch.bfloat16
    for bad in ("float8", "torch.float32", ""):
        with pytest.raises(ValueError) as caught:
            devices.parse_dtype(bad)
        assert str(caught.value) == f"unknown dtype {bad!r}: use one of float32, bfloat16, float16"
