"""otdiv._files.replaced: a result file is written whole or left as it was."""

from __future__ import annotations

import os

import pytest

from otdiv._files import replaced


def test_an_error_mid_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text("the previous rows")
    with pytest.raises(RuntimeError), replaced(path) as fh:
        fh.write("half of the new ")
        raise RuntimeError("the machine went away")
    assert path.read_text() == "the previous rows"
    assert os.listdir(tmp_path) == ["rows.json"]


def test_the_new_file_replaces_the_old_with_the_usual_permissions(tmp_path):
    path, plain = tmp_path / "report.json", tmp_path / "plain.json"
    path.write_text("old")
    with replaced(path) as fh:
        fh.write("new")
    with open(plain, "w") as fh:       # what any file this process creates gets
        fh.write("x")
    assert path.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["plain.json",
                                                                          "report.json"]
    assert os.stat(path).st_mode == os.stat(plain).st_mode
    with replaced(tmp_path / "data.bin", "wb") as fh:
        fh.write(b"\x00\x01")
    assert (tmp_path / "data.bin").read_bytes() == b"\x00\x01"
