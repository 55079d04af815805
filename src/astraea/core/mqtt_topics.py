"""MQTT 3.1.1 topic names and topic filters (sans-IO).

Topic names are what a PUBLISH carries (no wildcards); topic filters are what a SUBSCRIBE
carries (`+` matches one level, `#` the rest, both only as whole levels, `#` only last).
"""

from __future__ import annotations

_WILDCARDS = ("+", "#")


def is_valid_topic_name(topic: str) -> bool:
    return bool(topic) and "+" not in topic and "#" not in topic and "\x00" not in topic


def is_valid_topic_filter(topic_filter: str) -> bool:
    if not topic_filter or "\x00" in topic_filter:
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if level == "#":
            if index != len(levels) - 1:
                return False
        elif level != "+" and any(wildcard in level for wildcard in _WILDCARDS):
            return False
    return True


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a valid topic name falls under a valid topic filter.

    Topics starting with `$` are never matched by a leading wildcard, as the spec requires.
    """
    if "+" not in topic_filter and "#" not in topic_filter:
        return topic_filter == topic
    if topic.startswith("$") and topic_filter[0] in _WILDCARDS:
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)
