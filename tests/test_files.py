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


def test_a_link_is_followed_and_a_private_file_stays_private(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "report.json").write_text("old")
    link = tmp_path / "report.json"
    link.symlink_to(real / "report.json")
    os.chmod(real / "report.json", 0o600)
    with replaced(link) as fh:
        fh.write("new")
    assert link.is_symlink() and (real / "report.json").read_text() == "new"
    assert os.stat(real / "report.json").st_mode & 0o777 == 0o600


def test_a_directory_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="is a directory"), replaced(tmp_path) as fh:
        fh.write("x")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes in any folder")
def test_a_folder_without_write_permission_is_refused_up_front(tmp_path):
    from otdiv._files import writable_file

    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "D.npz").write_bytes(b"")
    os.chmod(folder, 0o555)       # the file is writable, a file beside it cannot be made
    try:
        with pytest.raises(ValueError, match="checkpoint: cannot write"):
            writable_file(folder / "D.npz", "checkpoint")
    finally:
        os.chmod(folder, 0o755)


def test_replaced_waits_out_a_file_held_open_on_windows(tmp_path, monkeypatch):
    # Windows refuses os.replace for a moment while another process holds the target open;
    # replaced() tries again there, and raises at once elsewhere (where it is a real refusal)
    import otdiv._files as files

    target = tmp_path / "report.json"
    target.write_text("old")
    real, calls = os.replace, []

    def held_twice(src, dst):
        calls.append(dst)
        if len(calls) <= 2:
            raise PermissionError(13, "The process cannot access the file")
        real(src, dst)

    monkeypatch.setattr(files.os, "replace", held_twice)
    monkeypatch.setattr(files, "_RETRY_REPLACE", True)
    with replaced(target) as fh:
        fh.write("new")
    assert target.read_text() == "new" and len(calls) == 3

    calls.clear()
    monkeypatch.setattr(files, "_RETRY_REPLACE", False)
    with pytest.raises(PermissionError), replaced(target) as fh:
        fh.write("newer")
    assert target.read_text() == "new" and len(calls) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary left


def test_replaced_gives_up_after_about_two_seconds_and_leaves_the_target(tmp_path, monkeypatch):
    # a file held open for good: the waits run out, the last refusal is raised, no sleep
    # follows the last try, the target is as it was and no temporary file is left
    import otdiv._files as files

    target = tmp_path / "report.json"
    target.write_text("old")
    tries, waits = [], []

    def held(src, dst):
        tries.append(dst)
        raise PermissionError(13, "The process cannot access the file")

    monkeypatch.setattr(files.os, "replace", held)
    monkeypatch.setattr(files, "_RETRY_REPLACE", True)
    monkeypatch.setattr("time.sleep", waits.append)
    with pytest.raises(PermissionError), replaced(target) as fh:
        fh.write("new")
    assert len(tries) == len(files._REPLACE_WAITS) + 1 and waits == list(files._REPLACE_WAITS)
    assert 1.5 < sum(waits) < 3.0
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
