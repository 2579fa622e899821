"""Prefetching a Parquet data file while the command line starts (kaohe.io.prefetch): the
frame is used only for the same, unchanged file, and a read that failed or was not
asked for changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from kaohe.errors import InputErrors
from kaohe.io import prefetch
from kaohe.io.read import read_data
from kaohe.rulebook.loader import load_rulebook

EXAMPLE = Path(__file__).parent / "fixtures" / "village-1000-example"
DATA = next(EXAMPLE.glob("*data*.csv"))
UNITS = next(EXAMPLE.glob("*units*.csv"))


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    prefetch.forget()
    yield
    prefetch.forget()


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    path = tmp_path / "data.parquet"
    pl.read_csv(DATA).write_parquet(path)
    return path


@pytest.mark.parametrize(
    ("args", "value"),
    [
        (["village-1000", "--data", "d.parquet", "--period", "2022"], "d.parquet"),
        (["village-1000", "--data=d.parquet"], "d.parquet"),
        (["village-1000", "--period", "2022"], None),
        (["village-1000", "--data"], None),
        (["--", "--data", "d.parquet"], None),
    ],
)
def test_option(args: list[str], value: str | None) -> None:
    assert prefetch.option(args, "--data") == value


def test_only_existing_parquet_files_are_prefetched(parquet: Path, tmp_path: Path) -> None:
    assert not prefetch.start(DATA)  # CSV: its types depend on the rulebook
    assert not prefetch.start(tmp_path / "missing.parquet")
    assert not prefetch.start(tmp_path)  # a folder
    assert prefetch.pending() == 0
    assert prefetch.start(parquet)
    assert prefetch.pending() == 1


def test_the_frame_is_handed_out_once(parquet: Path) -> None:
    prefetch.start(parquet)
    got = prefetch.take(parquet)
    assert isinstance(got, pl.DataFrame)
    assert_frame_equal(got, pl.read_parquet(parquet))
    assert prefetch.take(parquet) is None


def test_read_data_uses_the_prefetched_frame(
    parquet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rb = load_rulebook("village-1000")
    expected = read_data(parquet, rb).frame
    prefetch.start(parquet)
    prefetch._reads[str(parquet.resolve())].thread.join()

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("read again")

    monkeypatch.setattr(pl, "read_parquet", no_reading)
    assert_frame_equal(read_data(parquet, rb).frame, expected)
    assert prefetch.pending() == 0


def test_a_file_changed_since_is_read_again(parquet: Path) -> None:
    rb = load_rulebook("village-1000")
    prefetch.start(parquet)
    prefetch._reads[str(parquet.resolve())].thread.join()
    changed = pl.read_parquet(parquet).with_columns(pl.col("population") + 1)
    changed.write_parquet(parquet)
    st = parquet.stat()
    os.utime(parquet, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert prefetch.take(parquet) is None
    frame = read_data(parquet, rb).frame
    assert (
        frame["population"].drop_nulls().to_list() == changed["population"].drop_nulls().to_list()
    )


def test_a_damaged_file_is_reported_by_read_data(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not a parquet file")
    assert prefetch.start(bad)
    with pytest.raises(InputErrors) as info:
        read_data(bad, load_rulebook("village-1000"))
    assert "cannot read as a Parquet file" in str(info.value)
    assert prefetch.pending() == 0


def test_kaohe_score_gives_the_same_result_from_a_prefetched_parquet_file(parquet: Path) -> None:
    def score(data: Path) -> dict[str, object]:
        code = (
            "import sys\n"
            "from kaohe.cli import main\n"
            f"sys.argv = ['kaohe', 'score', 'village-1000', '--data', {str(data)!r}, "
            f"'--units', {str(UNITS)!r}, '--period', '2022']\n"
            "main()\n"
        )
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        result: dict[str, object] = json.loads(run.stdout)
        return result

    assert score(parquet)["results"] == score(DATA)["results"]
