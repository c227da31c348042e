"""Listing Label Studio page by page: no page asked for beyond the last."""

import pytest
from label_studio_sdk.core.api_error import ApiError

from connectors.label_studio import every_item


class Page:
    def __init__(self, pages: list[list[int]], asked: list[int], number: int = 0):
        self.pages, self.asked, self.number = pages, asked, number
        self.items, self.has_next = pages[number], True

    def next_page(self):
        self.asked.append(self.number + 1)
        if self.number + 1 >= len(self.pages):
            raise ApiError(status_code=404, body={"detail": "Invalid page."})
        return Page(self.pages, self.asked, self.number + 1)


def test_a_short_page_ends_the_listing_without_asking_for_more():
    asked = []
    assert list(every_item(Page([[1, 2], [3]], asked), page_size=2)) == [1, 2, 3]
    assert asked == [1]


def test_an_exactly_full_last_page_ends_at_label_studios_404():
    asked = []
    assert list(every_item(Page([[1, 2], [3, 4]], asked), page_size=2)) == [1, 2, 3, 4]
    assert asked == [1, 2]


def test_other_errors_are_not_taken_for_the_end():
    class Broken(Page):
        def next_page(self):
            raise ApiError(status_code=500, body={})

    with pytest.raises(ApiError) as raised:
        list(every_item(Broken([[1, 2]], []), page_size=2))
    assert raised.value.status_code == 500
