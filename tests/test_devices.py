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


def test_a_bad_size_dtype_or_device_in_the_environment_is_named_with_what_it_should_be(monkeypatch):
    monkeypatch.delenv("RERANKER_VISION_CACHE_MB", raising=False)
    assert devices.env_megabytes("RERANKER_VISION_CACHE_MB") is None
    for text, size in (("512", 512 * 2**20), (" 0 ", 0), ("1.5", int(1.5 * 2**20))):
        monkeypatch.setenv("RERANKER_VISION_CACHE_MB", text)
        assert devices.env_megabytes("RERANKER_VISION_CACHE_MB") == size
        assert devices.default_cache_bytes(torch.device("cpu"), cpu=1, variable="RERANKER_VISION_CACHE_MB") == size
    for text in ("lots", "1GB", "-5", "nan", "inf"):
        monkeypatch.setenv("RERANKER_VISION_CACHE_MB", text)
        with pytest.raises(ValueError) as caught:
            devices.default_cache_bytes(torch.device("cpu"), cpu=1, variable="RERANKER_VISION_CACHE_MB")
        assert str(caught.value) == f"RERANKER_VISION_CACHE_MB={text!r}: expected a size in MB, a number such as 512"

    monkeypatch.setenv("RERANKER_DTYPE", "float64")
    with pytest.raises(ValueError, match=r"^RERANKER_DTYPE: unknown dtype 'float64': use one of float32, bfloat16, float16$"):
        devices.default_dtype(torch.device("cpu"))
    monkeypatch.setenv("RERANKER_DEVICE", "gpu")
    with pytest.raises(ValueError, match=r"^RERANKER_DEVICE='gpu' is not a device \(.*\); use e\.g\. cpu, cuda or cuda:1$"):
        devices.default_device()


@pytest.mark.parametrize("value, expected", [("", False), ("1", True), ("True", True), ("YES", True), (" on ", True),
                                             ("0", False), ("false", False), ("No", False), ("off", False)])
def test_an_on_off_setting_reads_every_usual_spelling(monkeypatch, value, expected):
    """RERANKER_COMPILE=True was silently off, RERANKER_REQUIRE_LOGIN=false silently on."""
    monkeypatch.setenv("RERANKER_COMPILE", value)
    assert devices.env_flag("RERANKER_COMPILE") is expected


def test_an_on_off_setting_given_as_neither_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("RERANKER_REQUIRE_LOGIN", "nope")
    with pytest.raises(ValueError, match=r"^RERANKER_REQUIRE_LOGIN='nope': expected 1 or 0 \(true/false, yes/no, on/off\)$"):
        devices.env_flag("RERANKER_REQUIRE_LOGIN", default=True)
    monkeypatch.delenv("RERANKER_REQUIRE_LOGIN")
    assert devices.env_flag("RERANKER_REQUIRE_LOGIN", default=True) is True
