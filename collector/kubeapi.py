"""What every reader of the Kubernetes API here shares, whatever its client: walking a paged list.

Pure: the caller's ``fetch_page`` does the request (the CLI through the kubernetes client, the agent through its
own); this module imports no client.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional, Sequence, TypeVar

T = TypeVar("T")

#: Items asked for per page (the apiserver's default chunk size for kubectl, too).
PAGE_SIZE = 500

#: One page: its items and the ``metadata.continue`` token of the next (empty or None on the last page).
Page = tuple[Sequence[T], Optional[str]]


def paged(fetch_page: Callable[[int, Optional[str]], Page[T]], *, limit: int = PAGE_SIZE) -> Iterator[T]:
    """Every item of a list, page by page: ``fetch_page(limit, continue_token)`` is called with None first, then
    with each token the server returned, until a page comes back without one."""
    token: Optional[str] = None
    while True:
        items, token = fetch_page(limit, token)
        yield from items
        if not token:
            return
