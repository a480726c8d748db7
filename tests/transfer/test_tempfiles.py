"""Temporary files: created locked, kept or removed, and the clean-up of earlier runs' leftovers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import portalocker
import pytest

from fetcher.transfer import tempfiles
from fetcher.transfer.tempfiles import (
    KEEP_RESUMABLE_S,
    TEMP_PREFIX,
    TEMP_SUFFIX,
    UNLOCKED_GRACE_S,
    TempFiles,
    remove_leftovers,
)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX))


def partial_file(folder: Path, name: str, *, age_s: float = 0.0) -> Path:
    path = folder / f"{TEMP_PREFIX}{name}{TEMP_SUFFIX}"
    path.write_bytes(b"partial")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_remove_all_deletes_unfinished_files(tmp_path: Path) -> None:
    temp_files = TempFiles()
    fd, path = temp_files.create(tmp_path)
    os.close(fd)
    assert leftovers(tmp_path) == [path.name]
    temp_files.remove_all()
    assert leftovers(tmp_path) == []


def test_a_process_ending_while_a_thread_removes_a_file_still_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker process ends (remove_all, then os._exit) just as a download thread removes its file: the
    # thread never gets to its unlink.  The file must still be one remove_all knows of.
    temp_files = TempFiles()
    fd, path = temp_files.create(tmp_path)
    os.close(fd)
    real_unlink, interrupted = tempfiles._unlink, list[Path]()

    def unlink_cut_short(target: Path) -> None:
        if not interrupted:
            interrupted.append(target)
            temp_files.remove_all()  # the process's end, in between; the thread then dies
            return
        real_unlink(target)

    monkeypatch.setattr(tempfiles, "_unlink", unlink_cut_short)
    temp_files.remove(path)
    assert interrupted == [path]
    assert leftovers(tmp_path) == []


def test_remove_all_leaves_a_file_marked_to_be_kept(tmp_path: Path) -> None:
    temp_files = TempFiles()
    fd, kept = temp_files.create(tmp_path)
    os.close(fd)
    temp_files.keep(kept)
    fd, dropped = temp_files.create(tmp_path)
    os.close(fd)
    temp_files.remove_all()
    assert leftovers(tmp_path) == [kept.name]


def test_a_file_being_written_is_never_removed_by_a_clean_up(tmp_path: Path) -> None:
    temp_files = TempFiles()
    fd, path = temp_files.create(tmp_path)
    os.utime(path, (0, 0))  # as old as can be: only its lock protects it
    try:
        assert remove_leftovers(tmp_path, resumable=()).removed == 0
        assert leftovers(tmp_path) == [path.name]
    finally:
        os.close(fd)


def test_an_unlocked_partial_file_of_a_dead_run_is_removed_at_once(tmp_path: Path) -> None:
    partial_file(tmp_path, "killed", age_s=UNLOCKED_GRACE_S + 5)
    cleanup = remove_leftovers(tmp_path, resumable=())
    assert (cleanup.removed, cleanup.removed_bytes) == (1, len(b"partial"))
    assert leftovers(tmp_path) == []


def test_an_unlocked_partial_file_younger_than_the_grace_period_stays(tmp_path: Path) -> None:
    # A writer may have created it and not locked it yet.
    young = partial_file(tmp_path, "just-created")
    assert remove_leftovers(tmp_path, resumable=()).removed == 0
    assert leftovers(tmp_path) == [young.name]


def test_a_resumable_partial_file_on_record_is_kept(tmp_path: Path) -> None:
    kept = partial_file(tmp_path, "resumable", age_s=3600)
    cleanup = remove_leftovers(tmp_path, resumable={str(kept)})
    assert (cleanup.removed, cleanup.kept) == (0, 1)
    assert leftovers(tmp_path) == [kept.name]


def test_a_resumable_partial_file_untouched_for_a_week_is_removed(tmp_path: Path) -> None:
    stale = partial_file(tmp_path, "stale", age_s=KEEP_RESUMABLE_S + 60)
    assert remove_leftovers(tmp_path, resumable={str(stale)}).removed == 1
    assert leftovers(tmp_path) == []


def test_reopen_locks_a_kept_partial_file_for_appending(tmp_path: Path) -> None:
    path = partial_file(tmp_path, "resume")
    first, second = TempFiles(), TempFiles()
    fd = first.reopen(path)
    assert fd is not None
    try:
        assert second.reopen(path) is None  # a second writer is refused while the first holds it
    finally:
        os.close(fd)
    fd = second.reopen(path)
    assert fd is not None
    os.close(fd)


def test_reopen_refuses_a_file_that_is_gone(tmp_path: Path) -> None:
    assert TempFiles().reopen(tmp_path / f"{TEMP_PREFIX}gone{TEMP_SUFFIX}") is None


def test_unkeep_lets_remove_all_delete_the_file_again(tmp_path: Path) -> None:
    temp_files = TempFiles()
    fd, path = temp_files.create(tmp_path)
    os.close(fd)
    temp_files.keep(path)
    temp_files.unkeep(path)
    temp_files.remove_all()
    assert leftovers(tmp_path) == []


def test_an_unlocked_partial_file_of_a_dead_process_is_removed_however_young(tmp_path: Path) -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(child.stdout)  # reaped: no such process any more (pid reuse within the test is remote)
    young = partial_file(tmp_path, f"{dead_pid}-ab12-0")
    assert remove_leftovers(tmp_path, resumable=()).removed == 1
    assert not young.exists()


def test_a_young_unlocked_partial_file_of_a_live_process_stays(tmp_path: Path) -> None:
    young = partial_file(tmp_path, f"{os.getpid()}-ab12-0")
    assert remove_leftovers(tmp_path, resumable=()).removed == 0
    assert young.exists()


def test_a_file_that_cannot_be_removed_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "sub"
    folder.mkdir()
    temp_files = TempFiles()
    fd, path = temp_files.create(folder)
    os.close(fd)
    path.unlink()
    path.mkdir()  # unlink() of a folder fails with an OSError other than "not found"
    temp_files.remove(path)
    assert "could not remove the temporary file" in caplog.text


def test_the_lock_of_a_new_file_is_the_one_portalocker_sees(tmp_path: Path) -> None:
    # Another fetcher (or an older one, which locks through portalocker) must find it held.
    fd, path = TempFiles().create(tmp_path)
    other = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(portalocker.AlreadyLocked):
            portalocker.lock(other, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
    finally:
        os.close(other)
        os.close(fd)


def test_without_fcntl_a_new_file_is_locked_through_portalocker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfiles, "fcntl", None)  # as on a system without it
    fd, path = TempFiles().create(tmp_path)
    try:
        assert TempFiles().reopen(path) is None  # held: a second writer is refused
    finally:
        os.close(fd)
