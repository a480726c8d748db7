"""fetcher._openfiles: the soft limit on open files, read and raised."""

from __future__ import annotations

import pytest

from fetcher._openfiles import raise_soft_limit, soft_limit

resource = pytest.importorskip("resource")


def test_the_soft_limit_is_raised_as_far_as_the_hard_one_allows() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        raise_soft_limit(8192)
        raised = soft_limit()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert raised == (8192 if hard == resource.RLIM_INFINITY else min(hard, 8192))


def test_the_soft_limit_is_never_lowered() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raise_soft_limit(64)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)
