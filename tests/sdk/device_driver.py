"""Drive one official Astarte SDK device (astarte-device-sdk 0.14.0) from a JSON scenario.

Runs INSIDE `.venv-sdk` (never the project venv: the SDK's py-bson clashes with pymongo's
`bson`). Usage: `python device_driver.py SCENARIO` where SCENARIO is a file path, `-` (read
stdin; also the default) or an inline JSON object. Every event is one JSON object per line on
stdout, so a pytest test can assert on what the unmodified SDK did. The format is described in
docs/dev/official-sdk.md ("Scenario driver").

Exit status: 0 all actions succeeded, 1 an action failed, 2 the scenario itself is invalid.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_SCENARIO = 2
DEFAULT_TIMEOUT_S = 10.0


class ScenarioError(Exception):
    """The scenario is malformed (as opposed to the SDK or the server failing)."""


class ActionTimeout(Exception):
    """A wait_* action did not see what it waited for in time."""


class ExpectedErrorMissing(Exception):
    """An action marked `expect_error` succeeded."""


class Emitter:
    """Serialises events from the main thread and the paho network thread onto stdout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, event: str, **fields: Any) -> None:
        record = {"event": event, "ts": round(time.time(), 6), **fields}
        line = json.dumps(to_json(record), sort_keys=False)
        with self._lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


def to_json(value: Any) -> Any:
    """Make SDK values printable: datetimes as ISO 8601 UTC, bytes as base64."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def type_name(value: Any) -> str | dict[str, Any] | list[Any]:
    """Python type of a received value, so tests can check e.g. that a double arrived as float."""
    if isinstance(value, dict):
        return {str(k): type_name(v) for k, v in value.items()}
    if isinstance(value, list):
        return [type_name(v) for v in value]
    return type(value).__name__


def parse_datetime(raw: Any) -> datetime:
    """ISO 8601 string (naive = UTC) or epoch milliseconds into an aware UTC datetime."""
    if isinstance(raw, bool):
        raise ScenarioError(f"not a datetime: {raw!r}")
    if isinstance(raw, int | float):
        return datetime.fromtimestamp(raw / 1000.0, tz=UTC)
    if isinstance(raw, str):
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ScenarioError(f"not a datetime: {raw!r}")


def coerce(value: Any, astarte_type: str) -> Any:
    """Turn a JSON value into the exact Python type the SDK validates for `astarte_type`.

    The SDK checks `type(v) is float` for doubles, datetime objects for datetimes and bytes
    for blobs, so JSON `1`, ISO strings and base64 strings are converted here. Values already
    of another shape are passed through untouched so the SDK's own validation can reject them.
    """
    if astarte_type.endswith("array") and isinstance(value, list):
        return [coerce(v, astarte_type[: -len("array")]) for v in value]
    if astarte_type == "double" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if astarte_type in ("integer", "longinteger") and isinstance(value, str):
        return int(value)
    if astarte_type == "datetime" and isinstance(value, str | int | float):
        return parse_datetime(value)
    if astarte_type == "binaryblob" and isinstance(value, str):
        return base64.b64decode(value)
    return value


class Driver:
    """Owns the SDK device and the state its callbacks (paho thread) share with the actions."""

    def __init__(self, scenario: dict[str, Any], emit: Emitter) -> None:
        self.scenario = scenario
        self.emit = emit
        self.cond = threading.Condition()
        self.connected = False
        self.connect_count = 0
        self.disconnect_count = 0
        self.messages: list[dict[str, Any]] = []
        self.device: Any = None
        self.interfaces: dict[str, Any] = {}
        self.secret: str | None = scenario.get("credentials_secret")

    # ---- setup -------------------------------------------------------------------------

    def register(self) -> None:
        """Optional agent registration through the SDK's own helpers (`register` block)."""
        spec = self.scenario.get("register")
        if not spec:
            return
        from astarte.device import register_device_with_jwt_token, register_device_with_private_key

        args = self._base_args()
        if "jwt" in spec:
            secret = register_device_with_jwt_token(
                args["device_id"],
                args["realm"],
                spec["jwt"],
                args["pairing_base_url"],
                args["ignore_ssl_errors"],
            )
        elif "private_key_file" in spec:
            secret = register_device_with_private_key(
                args["device_id"],
                args["realm"],
                spec["private_key_file"],
                args["pairing_base_url"],
                args["ignore_ssl_errors"],
            )
        else:
            raise ScenarioError("register needs 'jwt' or 'private_key_file'")
        self.secret = secret
        self.emit("registered", credentials_secret=secret)

    def _base_args(self) -> dict[str, Any]:
        try:
            return {
                "device_id": str(self.scenario["device_id"]),
                "realm": str(self.scenario["realm"]),
                "pairing_base_url": str(self.scenario["pairing_base_url"]).rstrip("/"),
                "ignore_ssl_errors": bool(self.scenario.get("ignore_ssl_errors", False)),
            }
        except KeyError as exc:
            raise ScenarioError(f"missing scenario field {exc.args[0]!r}") from None

    def create_device(self) -> None:
        from astarte.device import DeviceMqtt

        args = self._base_args()
        if self.secret is None:
            raise ScenarioError("missing 'credentials_secret' (or a 'register' block)")
        persistency = self.scenario.get("persistency_dir")
        if not persistency:
            raise ScenarioError("missing scenario field 'persistency_dir'")
        Path(persistency).mkdir(parents=True, exist_ok=True)
        self.device = DeviceMqtt(
            device_id=args["device_id"],
            realm=args["realm"],
            credentials_secret=self.secret,
            pairing_base_url=args["pairing_base_url"],
            persistency_dir=str(persistency),
            ignore_ssl_errors=args["ignore_ssl_errors"],
        )
        interfaces_dir = self.scenario.get("interfaces_dir")
        if interfaces_dir:
            for file in sorted(Path(interfaces_dir).glob("*.json")):
                self._add_interface(json.loads(file.read_text(encoding="utf-8")))
        for definition in self.scenario.get("interfaces", []):
            self._add_interface(definition)
        self.device.set_events_callbacks(
            on_connected=self._on_connected,
            on_data_received=self._on_data,
            on_disconnected=self._on_disconnected,
        )
        self.emit(
            "device_created",
            device_id=args["device_id"],
            realm=args["realm"],
            interfaces=sorted(self.interfaces),
        )

    def _add_interface(self, definition: dict[str, Any]) -> None:
        from astarte.device import Interface

        self.device.add_interface_from_json(definition)
        parsed = Interface(definition)
        self.interfaces[parsed.name] = parsed

    # ---- SDK callbacks (paho network thread) --------------------------------------------

    def _on_connected(self, _device: Any) -> None:
        with self.cond:
            self.connected = True
            self.connect_count += 1
            self.cond.notify_all()
        self.emit("connected", count=self.connect_count)

    def _on_disconnected(self, _device: Any, rc: Any) -> None:
        with self.cond:
            self.connected = False
            self.disconnect_count += 1
            self.cond.notify_all()
        self.emit("disconnected", rc=int(rc), count=self.disconnect_count)

    def _on_data(self, _device: Any, interface: str, path: str, value: Any) -> None:
        message = {
            "interface": interface,
            "path": path,
            "value": to_json(value),
            "value_type": type_name(value),
        }
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()
        self.emit("message", **message)

    # ---- actions ------------------------------------------------------------------------

    def run(self) -> int:
        actions = self.scenario.get("actions", [])
        if not isinstance(actions, list):
            raise ScenarioError("'actions' must be a list")
        stop_on_error = bool(self.scenario.get("stop_on_error", True))
        failed = False
        for index, action in enumerate(actions):
            if not isinstance(action, dict) or not isinstance(action.get("action"), str):
                raise ScenarioError(f"action #{index} needs an 'action' name")
            name = action["action"]
            handler: Callable[[dict[str, Any]], dict[str, Any] | None] | None = getattr(
                self, f"do_{name}", None
            )
            if handler is None:
                raise ScenarioError(f"unknown action {name!r} (#{index})")
            expect = action.get("expect_error")
            try:
                result = handler(action)
                if expect:
                    raise ExpectedErrorMissing(f"{name} succeeded but an error was expected")
            except ScenarioError:
                raise
            except Exception as exc:
                expected = bool(expect) and not isinstance(exc, ExpectedErrorMissing)
                if expected and isinstance(expect, str) and type(exc).__name__ != expect:
                    expected = False
                self.emit("error", index=index, action=name, expected=expected, **describe(exc))
                if not expected:
                    failed = True
                    if stop_on_error:
                        break
                continue
            self.emit("ok", index=index, action=name, **(result or {}))
        self.emit("finished", ok=not failed)
        return EXIT_FAILED if failed else EXIT_OK

    def _interface(self, action: dict[str, Any]) -> Any:
        name = action.get("interface")
        if name not in self.interfaces:
            # Let the SDK raise its own InterfaceNotFoundError for unknown interfaces.
            return None
        return self.interfaces[name]

    def _value_for(self, action: dict[str, Any], aggregate: bool) -> Any:
        if "value" not in action:
            raise ScenarioError(f"{action['action']} needs a 'value'")
        value = action["value"]
        if action.get("raw"):
            return value
        interface = self._interface(action)
        if interface is None:
            return value
        path = action.get("path", "")
        if aggregate and isinstance(value, dict):
            out = {}
            for key, item in value.items():
                mapping = interface.get_mapping(f"{path}/{key}")
                out[key] = coerce(item, mapping.type) if mapping else item
            return out
        mapping = interface.get_mapping(path)
        return coerce(value, mapping.type) if mapping else value

    @staticmethod
    def _timestamp(action: dict[str, Any]) -> datetime | None:
        raw = action.get("timestamp")
        return None if raw is None else parse_datetime(raw)

    def do_connect(self, _action: dict[str, Any]) -> None:
        self.device.connect()

    def do_disconnect(self, _action: dict[str, Any]) -> None:
        self.device.disconnect()

    def do_wait_connected(self, action: dict[str, Any]) -> dict[str, Any]:
        self._wait(lambda: self.connected, action, "connection")
        return {"count": self.connect_count}

    def do_wait_disconnected(self, action: dict[str, Any]) -> dict[str, Any]:
        self._wait(lambda: not self.connected, action, "disconnection")
        return {"count": self.disconnect_count}

    def do_wait_reconnected(self, action: dict[str, Any]) -> dict[str, Any]:
        """Wait for a connection beyond the `count`-th one (default: one more than now)."""
        target = int(action.get("count", self.connect_count + 1))
        self._wait(lambda: self.connected and self.connect_count >= target, action, "reconnection")
        return {"count": self.connect_count}

    def _wait(self, predicate: Callable[[], bool], action: dict[str, Any], what: str) -> None:
        timeout = float(action.get("timeout", DEFAULT_TIMEOUT_S))
        with self.cond:
            if not self.cond.wait_for(predicate, timeout=timeout):
                raise ActionTimeout(f"no {what} within {timeout}s")

    def do_send(self, action: dict[str, Any]) -> None:
        self.device.send(
            action["interface"],
            action["path"],
            self._value_for(action, False),
            self._timestamp(action),
        )

    def do_send_aggregate(self, action: dict[str, Any]) -> None:
        self.device.send_aggregate(
            action["interface"],
            action.get("path", ""),
            self._value_for(action, True),
            self._timestamp(action),
        )

    def do_set_property(self, action: dict[str, Any]) -> None:
        self.device.send(action["interface"], action["path"], self._value_for(action, False))

    def do_unset_property(self, action: dict[str, Any]) -> None:
        self.device.unset_property(action["interface"], action["path"])

    def do_wait_message(self, action: dict[str, Any]) -> dict[str, Any]:
        """Consume the first not-yet-consumed received message matching the given fields."""
        wanted = {k: action[k] for k in ("interface", "path", "value") if k in action}
        timeout = float(action.get("timeout", DEFAULT_TIMEOUT_S))
        found: dict[str, Any] = {}

        def match() -> bool:
            for i, message in enumerate(self.messages):
                if all(message.get(k) == v for k, v in wanted.items()):
                    found.update(message)
                    # Earlier non-matching messages stay available to later waits.
                    self.messages.pop(i)
                    return True
            return False

        with self.cond:
            if not self.cond.wait_for(match, timeout=timeout):
                raise ActionTimeout(f"no message matching {wanted} within {timeout}s")
        return {"message": found}

    def do_add_interface(self, action: dict[str, Any]) -> dict[str, Any]:
        if "file" in action:
            definition = json.loads(Path(action["file"]).read_text(encoding="utf-8"))
        elif isinstance(action.get("interface"), dict):
            definition = action["interface"]
        else:
            raise ScenarioError("add_interface needs 'file' or an 'interface' object")
        self._add_interface(definition)
        return {"interface": definition.get("interface_name")}

    def do_remove_interface(self, action: dict[str, Any]) -> None:
        self.device.remove_interface(action["interface"])
        self.interfaces.pop(action["interface"], None)

    def do_sleep(self, action: dict[str, Any]) -> None:
        time.sleep(float(action.get("seconds", 1.0)))

    def do_exit(self, action: dict[str, Any]) -> None:
        """Die without an MQTT DISCONNECT, as a crashing or unplugged device would."""
        self.emit("exit", code=int(action.get("code", 0)))
        os._exit(int(action.get("code", 0)))


def describe(exc: BaseException) -> dict[str, Any]:
    """Error fields shared by every `error` event."""
    return {
        "error": type(exc).__name__,
        "module": type(exc).__module__,
        "message": str(exc),
    }


class JsonLogHandler(logging.Handler):
    """Forward SDK log records (e.g. 'Received unexpected message') as `log` events."""

    def __init__(self, emit: Emitter) -> None:
        super().__init__()
        self._emit = emit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit(
                "log", level=record.levelname, logger=record.name, message=record.getMessage()
            )
        except Exception:
            self.handleError(record)


def load_scenario(argv: list[str]) -> dict[str, Any]:
    source = argv[1] if len(argv) > 1 else "-"
    if source == "-":
        text = sys.stdin.read()
    elif source.lstrip().startswith("{"):
        text = source
    else:
        text = Path(source).read_text(encoding="utf-8")
    scenario = json.loads(text)
    if not isinstance(scenario, dict):
        raise ScenarioError("the scenario must be a JSON object")
    return scenario


def configure(scenario: dict[str, Any], emit: Emitter) -> None:
    """Process-wide settings that must exist before the SDK builds any SSL context."""
    ca_file = scenario.get("ca_file")
    if ca_file:
        # Honoured by unmodified code: OpenSSL's default verify paths (paho's
        # load_default_certs) and requests' CA bundle lookup.
        os.environ["SSL_CERT_FILE"] = str(ca_file)
        os.environ["REQUESTS_CA_BUNDLE"] = str(ca_file)
    root = logging.getLogger()
    root.setLevel(str(scenario.get("log_level", "WARNING")).upper())
    root.addHandler(JsonLogHandler(emit))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        # e.g. the SDK calling Pairing's verify from paho's on_disconnect and failing: that
        # kills paho's network thread, so the device silently stops reconnecting.
        if args.exc_value is not None:
            thread = args.thread.name if args.thread else None
            emit(
                "error",
                index=None,
                action=None,
                thread=thread,
                expected=False,
                **describe(args.exc_value),
            )

    threading.excepthook = thread_hook


def main(argv: list[str]) -> int:
    emit = Emitter()
    try:
        scenario = load_scenario(argv)
    except (OSError, ValueError, ScenarioError) as exc:
        emit("error", index=None, action="load_scenario", expected=False, **describe(exc))
        return EXIT_BAD_SCENARIO
    configure(scenario, emit)
    try:
        import astarte.device
        import paho.mqtt
    except ImportError as exc:
        emit("error", index=None, action="import", expected=False, **describe(exc))
        return EXIT_FAILED
    emit(
        "started",
        pid=os.getpid(),
        sdk_version=astarte.device.__version__,
        paho_version=paho.mqtt.__version__,
        python=sys.version.split()[0],
    )
    driver = Driver(scenario, emit)
    try:
        try:
            driver.register()
        except ScenarioError:
            raise
        except Exception as exc:
            emit("error", index=None, action="register", expected=False, **describe(exc))
            emit("finished", ok=False)
            return EXIT_FAILED
        try:
            driver.create_device()
        except ScenarioError:
            raise
        except Exception as exc:
            emit("error", index=None, action="create_device", expected=False, **describe(exc))
            emit("finished", ok=False)
            return EXIT_FAILED
        return driver.run()
    except ScenarioError as exc:
        emit("error", index=None, action="scenario", expected=False, **describe(exc))
        emit("finished", ok=False)
        return EXIT_BAD_SCENARIO


if __name__ == "__main__":
    sys.exit(main(sys.argv))
