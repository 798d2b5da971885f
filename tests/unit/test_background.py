"""kubectl_aicr.deploy.background: the call runs while the caller goes on; its result, or its exception, comes
back on the caller's thread."""

from __future__ import annotations

import threading

import pytest

from kubectl_aicr.deploy import background
from kubectl_aicr.errors import Forbidden


def test_the_call_runs_on_another_thread_while_the_caller_goes_on() -> None:
    release = threading.Event()
    threads: list[threading.Thread] = []

    def slow() -> int:
        threads.append(threading.current_thread())
        assert release.wait(30)
        return 42

    result = background.start(slow)
    release.set()  # the caller got here while slow() was still waiting
    assert result() == 42
    assert threads and threads[0] is not threading.current_thread() and threads[0].daemon


def test_its_exception_is_raised_by_result_as_it_was_raised() -> None:
    def forbidden() -> None:
        raise Forbidden("listing nodes: forbidden", hint="ask for list on nodes")

    result = background.start(forbidden)
    with pytest.raises(Forbidden) as e:
        result()
    assert str(e.value) == "listing nodes: forbidden" and e.value.hint == "ask for list on nodes"
