"""Triggers and delivery policies for the trigger and policy repository contracts."""

from __future__ import annotations

from typing import Any

from astraea.core.trigger_policies import Policy, parse_policy
from astraea.core.triggers import Trigger, parse_trigger

DEVICE = "ydqBlFsGQ--xZ-_efQxuLw"
IFACE = "org.example.Values"


def make_trigger(name: str = "t", policy: str | None = None, realm: str = "test") -> Trigger:
    doc: dict[str, Any] = {
        "name": name,
        "action": {"http_url": "https://example.com/hook", "http_method": "post"},
        "simple_triggers": [
            {
                "type": "data_trigger",
                "on": "incoming_data",
                "interface_name": IFACE,
                "interface_major": 1,
                "match_path": "/%{sensor}/value",
                "value_match_operator": ">=",
                "known_value": 0.5,
                "group_name": "plant",
            },
            {"type": "device_trigger", "on": "device_connected", "device_id": DEVICE},
        ],
    }
    if policy is not None:
        doc["policy"] = policy
    return parse_trigger(doc, realm=realm)


def device_trigger(name: str, on: str, interface: str, major: int) -> Trigger:
    return parse_trigger(
        {
            "name": name,
            "action": {"http_url": "https://example.com/hook", "http_method": "get"},
            "simple_triggers": [
                {
                    "type": "device_trigger",
                    "on": on,
                    "interface_name": interface,
                    "interface_major": major,
                }
            ],
        },
        realm="test",
    )


def make_policy(name: str = "retry") -> Policy:
    return parse_policy(
        {
            "name": name,
            "maximum_capacity": 100,
            "retry_times": 3,
            "event_ttl": 60,
            "error_handlers": [
                {"on": "server_error", "strategy": "retry"},
                {"on": [404, 410], "strategy": "discard"},
            ],
        }
    )
