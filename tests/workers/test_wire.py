"""What crosses the pipes between a run and its worker processes comes out as it went in."""

from __future__ import annotations

import multiprocessing.connection
import os
import pickle
import resource
import threading
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest

from fetcher._config import FetcherConfig
from fetcher._errors import BodyError, Cancelled, DiskError, DownloadError, HTTPStatusError, TransportError
from fetcher._urllist import Entry
from fetcher.state import Saved
from fetcher.transfer.outcome import Outcome
from fetcher.transfer.validators import PartialFile, Validators
from fetcher.workers.wire import Answer, Call, Done, Frames, Halt, Hello, Logged, PipeEnd, Task, Watch

URL = "http://files.example/a.iso"
SHA = "sha-256=" + "ab" * 32
VALIDATORS = Validators(etag='"v1"', last_modified="Sun, 06 Nov 1994 08:49:37 GMT")
PARTIAL = PartialFile(path=Path("/data/.fetcher-1-ab-0.part"), if_range='"v1"', total=5 << 20, validators=VALIDATORS)


def through_a_pipe(value: object) -> object:
    """*value* sent as the pool sends it (in a list, one message) and received on the other end."""
    read_end, write_end = os.pipe()
    reader, writer = PipeEnd(read_end), PipeEnd(write_end)
    try:
        writer.send([value])
        [received] = reader.recv()
    finally:
        reader.close()
        writer.close()
    return received


ERRORS = [
    DownloadError(URL, "something broke"),
    HTTPStatusError(URL, 503, "Service Unavailable", retry_after="120", answered_by="http://mirror.example/a.iso"),
    HTTPStatusError(URL, 404, ""),
    BodyError(URL, "connection closed before the body was complete", transient=True),
    TransportError(URL, "connection refused", transient=True),
    DiskError(URL, "No space left on device"),
    Cancelled(URL, "cancelled"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_every_download_error_comes_back_from_a_pickle_as_it_was(error: DownloadError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (str(copy), copy.args, vars(copy)) == (str(error), error.args, vars(error))


def test_a_done_brings_back_the_whole_outcome_of_its_attempt() -> None:
    error = BodyError(URL, "connection closed before the body was complete", transient=True)
    outcome = Outcome(http_status=200, bytes=3 << 20, ttfb_s=0.01, download_s=0.5, error=error, unchanged=False,
                      validators=VALIDATORS, mtime_ns=1_700_000_000_000_000_000, partial=PARTIAL,
                      resumed_from=1 << 20)  # fmt: skip
    copy = through_a_pipe(Done(7, outcome, kept=True))
    assert isinstance(copy, Done) and (copy.id, copy.kept) == (7, True)
    assert isinstance(copy.outcome.error, BodyError) and str(copy.outcome.error) == str(error)
    assert copy.outcome.error.transient
    # Outcomes compare their errors by identity: every other field is compared by value.
    assert copy.outcome == Outcome(**{**{name: getattr(outcome, name) for name in outcome.__slots__},
                                      "error": copy.outcome.error})  # fmt: skip


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(http_status=200, bytes=2048, ttfb_s=0.0003, download_s=0.0001, error=None, validators=VALIDATORS,
                mtime_ns=1_700_000_000_000_000_000),
        Outcome(http_status=304, bytes=0, ttfb_s=0.0002, download_s=None, error=None, unchanged=True),
        Outcome(http_status=200, bytes=5, ttfb_s=None, download_s=None, error=None, validators=Validators()),
    ],
    ids=["saved", "unchanged", "no-validators"],
)  # fmt: skip
def test_a_done_of_a_successful_attempt_comes_back_equal(outcome: Outcome) -> None:
    assert through_a_pipe(Done(9, outcome, kept=False)) == Done(9, outcome, kept=False)


def test_a_task_brings_everything_its_attempt_asks_with() -> None:
    saved = Saved(url=URL, path="/data/a.iso", size=10, mtime_ns=5, etag='"v0"', last_modified=None, checksum=SHA,
                  saved_at=1.5)  # fmt: skip
    task = Task(id=3, run=2, entry=Entry(url=URL, line=9, checksum=SHA, out="b.iso"), target=Path("/data/b.iso"),
                saved=saved, resume=PARTIAL, resume_kept=True, offer_partial=True, deadline=12.5, stop_at=30.0,
                watched=True)  # fmt: skip
    assert through_a_pipe(task) == task


@pytest.mark.parametrize(
    "message",
    [Halt(4), Answer(5, recorded=True), Call(6, 3, PARTIAL), Watch(3, name="a.iso", total=10, advance=4, done=True),
     Logged(10, "saved /data/a.iso (10 bytes)")],
    ids=lambda message: type(message).__name__,
)  # fmt: skip
def test_each_message_comes_back_equal(message: object) -> None:
    assert through_a_pipe(message) == message


def test_a_hello_brings_the_config_the_child_downloads_with(tmp_path: Path) -> None:
    config = FetcherConfig(dest=tmp_path, max_concurrent=8, timeout=12.0, max_filesize=1 << 30, speed_limit=1000,
                           max_time=60.0, ca_certificate=Path(certifi.where()), workers=2)  # fmt: skip
    hello = Hello(config, threads=4, log_level=10, index=1)
    assert through_a_pipe(hello) == hello


# -- Frames: the messages a pipe holds, read at once -------------------------------------------------


@pytest.fixture
def pipe() -> Iterator[tuple[Frames, PipeEnd]]:
    """A pipe read by Frames and written by a PipeEnd, as the pool and the children use them."""
    read_end, write_end = os.pipe()
    writer = PipeEnd(write_end)
    try:
        yield Frames(read_end), writer
    finally:
        writer.close()
        os.close(read_end)


def framed(value: object) -> bytes:
    """*value* as PipeEnd.send puts it on the pipe: its pickle's length, then the pickle."""
    whole = pickle.dumps(value)
    return len(whole).to_bytes(4, "big") + whole


def test_frames_hand_back_every_whole_message_one_read_brings(pipe: tuple[Frames, PipeEnd]) -> None:
    frames, writer = pipe
    for n in range(3):
        writer.send([n])
    assert frames.read() == [[0], [1], [2]]


def test_frames_wait_for_the_rest_of_a_message_that_arrives_in_parts(pipe: tuple[Frames, PipeEnd]) -> None:
    frames, writer = pipe
    message = b"".join(os.urandom(16) for _ in range(8))
    parts = framed(message)
    os.write(writer.fileno(), parts[:10])
    rest = threading.Timer(0.05, os.write, (writer.fileno(), parts[10:]))
    rest.start()
    try:
        assert frames.read() == [message]
    finally:
        rest.join(5)


def test_frames_read_a_message_larger_than_one_read(pipe: tuple[Frames, PipeEnd]) -> None:
    frames, writer = pipe
    big = os.urandom(300_000)  # past the 64 KiB of a read and a pipe's buffer: written from another thread
    sender = threading.Thread(target=writer.send, args=(big,))
    sender.start()
    try:
        assert frames.read() == [big]
    finally:
        sender.join(5)


def test_frames_keep_the_start_of_the_next_message_for_the_next_read(pipe: tuple[Frames, PipeEnd]) -> None:
    frames, writer = pipe
    both = framed("first") + framed("second")
    os.write(writer.fileno(), both[:-3])
    assert frames.read() == ["first"]
    os.write(writer.fileno(), both[-3:])
    assert frames.read() == ["second"]


def test_frames_end_when_the_writer_closes(pipe: tuple[Frames, PipeEnd]) -> None:
    frames, writer = pipe
    writer.close()
    with pytest.raises(EOFError):
        frames.read()


# -- PipeEnd: one end of a pipe, without multiprocessing -----------------------------------------------


@pytest.fixture
def ends() -> Iterator[tuple[PipeEnd, PipeEnd]]:
    """(reader, writer) of one pipe."""
    read_end, write_end = os.pipe()
    reader, writer = PipeEnd(read_end), PipeEnd(write_end)
    try:
        yield reader, writer
    finally:
        reader.close()
        writer.close()


def test_a_pipe_end_frames_messages_as_multiprocessing_does(ends: tuple[PipeEnd, PipeEnd]) -> None:
    reader, writer = ends
    theirs_read, theirs_write = multiprocessing.connection.Pipe(duplex=False)
    try:
        writer.send(["to multiprocessing"])
        os.write(theirs_write.fileno(), os.read(reader.fileno(), 1 << 16))
        assert theirs_read.recv() == ["to multiprocessing"]
        theirs_write.send(["from multiprocessing"])
        os.write(writer.fileno(), os.read(theirs_read.fileno(), 1 << 16))
        assert reader.recv() == ["from multiprocessing"]
    finally:
        theirs_read.close()
        theirs_write.close()


def test_a_pipe_end_sends_a_message_larger_than_the_pipe_holds(ends: tuple[PipeEnd, PipeEnd]) -> None:
    reader, writer = ends
    big = os.urandom(300_000)  # past the pipe's buffer: written from another thread while this one reads
    sender = threading.Thread(target=writer.send, args=(big,))
    sender.start()
    try:
        assert reader.recv() == big
    finally:
        sender.join(5)


def test_a_pipe_end_reads_eof_once_the_writer_is_closed(ends: tuple[PipeEnd, PipeEnd]) -> None:
    reader, writer = ends
    writer.close()
    with pytest.raises(EOFError):
        reader.recv()


def test_a_pipe_end_cannot_send_once_the_reader_is_gone(ends: tuple[PipeEnd, PipeEnd]) -> None:
    reader, writer = ends
    reader.close()
    with pytest.raises(OSError):  # BrokenPipeError: Python ignores SIGPIPE
        writer.send(["nobody reads this"])


def test_a_closed_pipe_end_refuses_to_be_used(ends: tuple[PipeEnd, PipeEnd]) -> None:
    _, writer = ends
    writer.close()
    writer.close()  # a second close does nothing
    assert writer.closed
    with pytest.raises(OSError, match="closed"):
        writer.send([])


def test_a_pipe_end_polls_until_a_message_comes(ends: tuple[PipeEnd, PipeEnd]) -> None:
    reader, writer = ends
    assert reader.poll(0.0) is False
    writer.send([])
    assert reader.poll(5.0) is True
    assert reader.recv() == []


def test_a_pipe_end_dropped_unclosed_gives_its_descriptor_back() -> None:
    read_end, write_end = os.pipe()
    reader = PipeEnd(read_end)
    del reader
    os.close(write_end)
    with pytest.raises(OSError):
        os.fstat(read_end)


def test_a_pipe_end_polls_on_a_descriptor_past_1023() -> None:
    # select.select refuses descriptors past FD_SETSIZE; a library caller may hold many files open.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the hard limit on open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    read_end, write_end = os.pipe()
    high = os.dup2(read_end, 2000)
    os.close(read_end)
    reader, writer = PipeEnd(high), PipeEnd(write_end)
    try:
        writer.send(["far up"])
        assert reader.poll(5.0) is True
        assert reader.recv() == ["far up"]
    finally:
        reader.close()
        writer.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
