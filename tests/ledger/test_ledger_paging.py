"""`chain_pages`: every item once, in order, in pages no larger than asked, for any length."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger.paging import chain_pages


@given(length=st.integers(0, 60), size=st.integers(1, 13), start=st.integers(0, 70))
def test_pages_cover_the_chain_from_start_once(length, size, start):
    chain = list(range(length))
    calls = []

    def fetch(author: bytes, frm: int, limit: int) -> list[int]:
        assert author == b"a"
        calls.append((frm, limit))
        return chain[frm:frm + limit]

    pages = list(chain_pages(fetch, b"a", start, size))
    assert [i for page in pages for i in page] == chain[start:]
    assert all(0 < len(page) <= size for page in pages)
    assert len(calls) <= len(pages) + 1  # stops at the first short or empty page
