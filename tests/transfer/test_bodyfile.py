"""BodyFile: a body's temporary file, put under its final name only when whole and checked."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from fetcher._errors import BodyError
from fetcher.transfer.bodyfile import KEEP_FROM, BodyFile
from fetcher.transfer.checksum import Checksum
from fetcher.transfer.outcome import Ask
from fetcher.transfer.tempfiles import TEMP_PREFIX, TempFiles
from fetcher.transfer.validators import PartialFile, Validators

URL = "https://example.com/a.bin"
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
RESUMABLE = {"ETag": '"v1"', "Accept-Ranges": "bytes"}


def temp_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith(TEMP_PREFIX))


def written(body: BodyFile, data: bytes) -> int:
    assert body.fd is not None
    os.write(body.fd, data)
    return len(data)


def test_a_whole_body_goes_under_the_final_name_with_the_servers_time(tmp_path: Path) -> None:
    body = BodyFile(tmp_path / "a.bin", TempFiles(), Ask(), 1024)
    body.start({}, 5)
    mtime_ns = body.finish(written(body, b"hello"), Validators(last_modified=LAST_MODIFIED), URL)
    body.close()
    assert (tmp_path / "a.bin").read_bytes() == b"hello"
    assert mtime_ns == (tmp_path / "a.bin").stat().st_mtime_ns == 1445412480 * 10**9
    assert (body.release(resumable=False), temp_names(tmp_path)) == (None, [])


def test_a_body_that_fails_its_checksum_leaves_the_good_file_and_no_temporary_one(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"good")
    ask = Ask(checksum=Checksum(algorithm="sha-256", hexdigest=hashlib.sha256(b"hello").hexdigest()))
    body = BodyFile(tmp_path / "a.bin", TempFiles(), ask, 1024)
    body.start({}, 5)
    size = written(body, b"HELLO")
    assert body.hasher is not None
    body.hasher.update(b"HELLO")
    with pytest.raises(BodyError, match="checksum mismatch"):
        body.finish(size, Validators(), URL)
    body.close()
    assert body.release(resumable=False) is None
    assert ((tmp_path / "a.bin").read_bytes(), temp_names(tmp_path)) == (b"good", [])


def cut_short(tmp_path: Path) -> PartialFile | None:
    """What an attempt hands back after "hello", 5 of a resumable body's 10 bytes."""
    body = BodyFile(tmp_path / "a.bin", TempFiles(), Ask(), 1024)
    body.start(RESUMABLE, 10)
    written(body, b"hello")
    body.close()
    return body.release(resumable=True)


def test_a_cut_body_with_a_strong_validator_is_handed_back_to_continue(tmp_path: Path) -> None:
    partial = cut_short(tmp_path)
    assert partial is not None and (partial.total, partial.if_range) == (10, '"v1"')
    assert partial.path.read_bytes() == b"hello"
    assert not (tmp_path / "a.bin").exists()


def test_a_cut_body_without_a_validator_is_removed(tmp_path: Path) -> None:
    body = BodyFile(tmp_path / "a.bin", TempFiles(), Ask(), 1024)
    body.start({}, 10)
    written(body, b"hello")
    body.close()
    assert (body.release(resumable=True), temp_names(tmp_path)) == (None, [])


def test_a_partial_file_reopened_is_appended_to_from_its_end(tmp_path: Path) -> None:
    resume = cut_short(tmp_path)
    body = BodyFile(tmp_path / "a.bin", TempFiles(), Ask(resume=resume), 1024)
    assert body.reopen(resume) == resume and body.offset == 5
    assert resume is not None
    body.continue_partial(resume)
    body.finish(body.offset + written(body, b"world"), Validators(), URL)
    body.close()
    assert ((tmp_path / "a.bin").read_bytes(), body.resumed_from) == (b"helloworld", 5)


def test_a_partial_file_already_whole_is_not_continued(tmp_path: Path) -> None:
    temp_files = TempFiles()
    fd, path = temp_files.create(tmp_path)
    os.write(fd, b"0123456789")
    os.close(fd)
    resume = PartialFile(path=path, if_range='"v1"', total=10, validators=Validators(etag='"v1"'))
    body = BodyFile(tmp_path / "a.bin", TempFiles(), Ask(resume=resume), 1024)
    assert body.reopen(resume) is None
    assert (body.offset, path.stat().st_size) == (0, 0)
    body.close()


def test_a_body_past_keep_from_is_offered_once_and_kept_when_recorded(tmp_path: Path) -> None:
    offered: list[PartialFile] = []

    def recorded(partial: PartialFile) -> bool:
        offered.append(partial)
        return True

    temp_files = TempFiles()
    body = BodyFile(tmp_path / "a.bin", temp_files, Ask(on_resumable=recorded), 1024)
    body.start(RESUMABLE, KEEP_FROM * 2)
    body.offer()
    assert body.kept and len(offered) == 1
    assert body.temp is not None and temp_files.is_kept(body.temp)
    body.close()
