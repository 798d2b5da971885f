"""One call on its own thread while the caller goes on (two API requests that need nothing from each other are
sent at the same time): :func:`start` returns the function that waits for it and returns its result, or raises
what it raised, on the caller's thread."""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

_T = TypeVar("_T")


def start(fn: Callable[[], _T]) -> Callable[[], _T]:
    """Run ``fn`` on a daemon thread (one the interpreter does not wait for at exit, should the caller give up on
    it); the returned function joins it and returns ``fn``'s result or raises its exception."""
    out: list[_T] = []
    err: list[BaseException] = []

    def call() -> None:
        try:
            out.append(fn())
        except BaseException as e:  # noqa: BLE001 - raised again by result(), on the caller's thread
            err.append(e)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()

    def result() -> _T:
        thread.join()
        if err:
            raise err[0]
        return out[0]

    return result
