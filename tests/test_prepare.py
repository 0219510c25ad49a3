"""``python -m cvae_lib prepare``: the first run builds the caches, the second finds them."""

from __future__ import annotations

import pytest

from cvae_lib.__main__ import main
from cvae_lib.course import course_config
from cvae_lib.classroom.prepare import prepare, summary_table
from cvae_lib.infra.storage import cache_dir


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> str:
    """One checkpoint folder for this module, so the classifier is trained only once."""
    return str(tmp_path_factory.mktemp("prepare-cache"))


@pytest.fixture(autouse=True)
def _use_shared_cache(shared_cache, monkeypatch) -> None:
    """Point every test of this module at the shared checkpoint folder."""
    monkeypatch.setenv("CVAE_CACHE_DIR", shared_cache)


def _statuses(results) -> dict[str, str]:  # noqa: ANN001 - a list of PrepareResult
    """Step name -> status."""
    return {r.name: r.status for r in results}


def test_first_run_builds_second_run_finds_everything() -> None:
    results = prepare(models=["vae", "cvae"], progress=False)
    first = _statuses(results)
    assert first["MNIST data"] in ("built", "cached")
    total = sum(r.seconds for r in results)
    default = next(r.seconds for r in results if r.name == "model cvae")
    assert f"= {total / default:.2f}x" in summary_table(results)
    assert first["model vae"] == first["model cvae"] == "built"
    for name in ("vae", "cvae"):
        assert (cache_dir() / f"{course_config(name).key()}.pt").is_file()
    second = prepare(models=["vae", "cvae"], progress=False)
    assert "built" not in _statuses(second).values()
    assert _statuses(second)["model cvae"] == "cached"
    table = summary_table(second)
    assert "0 built" in table and "model vae" in table and "x (the classroom" not in table


def test_unavailable_fashion_is_skipped_with_a_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CVAE_DATA_DIR", str(tmp_path / "data"))
    results = {r.name: r for r in prepare(models=["fashion"], progress=False)}
    if results["MNIST data"].status != "built":
        pytest.fail("an empty data folder should have been filled from the offline copy")
    fashion = results["model fashion"]
    assert fashion.status == "skipped"
    assert "data/FashionMNIST/raw" in fashion.note


def test_cli_rejects_unknown_model_names(capsys) -> None:
    assert main(["prepare", "--models", "nope"]) == 2
    assert "unknown course model" in capsys.readouterr().err


def test_cli_refuses_a_cache_it_cannot_write_before_training(tmp_path, monkeypatch,
                                                             capsys) -> None:
    """A cache path that is a file: one line and exit 2, no model trained for nothing."""
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CVAE_CACHE_DIR", str(blocker))
    assert main(["prepare", "--models", "vae"]) == 2
    captured = capsys.readouterr()
    assert "is a file, not a folder" in captured.err
    assert "Preparing" not in captured.out  # refused before the first step


def test_cli_second_run_reports_all_cached(capsys) -> None:
    main(["prepare", "--models", "vae"])
    capsys.readouterr()
    main(["prepare", "--models", "vae"])
    out = capsys.readouterr().out
    assert "0 built" in out and "FAST mode" in out


def test_the_main_job_seeds_the_course_cache_so_prepare_trains_the_default_once(
        tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CVAE_CACHE_DIR", str(tmp_path / "cache"))  # empty: nothing cached yet
    default = course_config("cvae")  # fast mode: 2 epochs on 2,048 images
    assert main(["train", "--epochs", str(default.num_epochs), "--out", str(tmp_path / "o")]) == 0
    assert f"course model 'cvae': cached as {cache_dir() / default.key()}.pt" in \
        capsys.readouterr().out
    monkeypatch.setattr("cvae_lib.checkpoints.train", _no_training)
    assert _statuses(prepare(models=["cvae"], progress=False))["model cvae"] == "cached"


def _no_training(*args: object, **kwargs: object) -> None:
    """Stands in for ``train`` where a test shows that nothing is trained."""
    raise AssertionError("the cached default model was trained again")
