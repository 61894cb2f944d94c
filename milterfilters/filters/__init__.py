"""Filters: each judges the transaction at the stages it implements."""

from milterfilters.filters.base import Filter, FilterSettings, NoOptions

__all__ = ["Filter", "FilterSettings", "NoOptions"]
