"""The continuation's decisions that no simulator answer provokes: an answer that is not a
search result stops the snapshot, and a full answer without prices cannot be continued."""

from __future__ import annotations

import pytest

from pipeline.core.errors import BadResponseError
from pipeline.market.search import search_market


def test_an_answer_without_offers_stops_the_snapshot() -> None:
    with pytest.raises(BadResponseError) as caught:
        search_market(lambda _body: {"success": False, "error": "busy"}, ["RTX 4090"],
                      limit=10, allocated_storage_gb=8.0)
    assert "has no 'offers' list" in str(caught.value)


def test_a_full_answer_without_prices_is_incomplete() -> None:
    asked: list[dict] = []

    def post(body: dict) -> dict:
        asked.append(body)
        first = 0 if body["verified"]["eq"] else 100  # other machines, other ids
        return {"offers": [{"id": first + i} for i in range(3)]}

    result = search_market(post, ["RTX 4090"], limit=3, allocated_storage_gb=8.0)
    assert len(asked) == 4 and all("dph_total" not in body for body in asked)
    assert result.incomplete_reasons == [
        f"{kind} {v} offers: a full response had no dph_total"
        for kind in ("on-demand", "bid") for v in ("verified", "unverified")]
