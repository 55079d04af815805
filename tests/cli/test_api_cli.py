"""The Housekeeping and Realm Management CLI groups, as processes against a running platform."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from tests.conftest import KeyPair

from astraea.interfaces import ASTARTE_STANDARD
from astraea.platform import Platform

STANDARD = ASTARTE_STANDARD


class Cli:
    def __init__(self, base_url: str, workdir: Path) -> None:
        self.env = {**os.environ, "ASTRAEA_URL": base_url, "NO_COLOR": "1", "COLUMNS": "200"}
        self.workdir = workdir

    async def __call__(self, *args: str, stdin: str = "") -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "astraea.cli",
            *args,
            cwd=self.workdir,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate(stdin.encode())
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()


@pytest.fixture
def cli(platform: Platform, tmp_path: Path, housekeeping_keys: KeyPair, realm_keys: KeyPair) -> Cli:
    (tmp_path / "hk.pem").write_text(housekeeping_keys.private_pem)
    (tmp_path / "realm.pem").write_text(realm_keys.private_pem)
    (tmp_path / "realm_public.pem").write_text(realm_keys.public_pem)
    return Cli(f"http://127.0.0.1:{platform.http_port}", tmp_path)


async def test_newcomer_flow_create_realm_sync_and_list(cli: Cli, tmp_path: Path) -> None:
    hk = ("housekeeping", "--private-key", "hk.pem")
    code, out, err = await cli(
        *hk, "realms", "create", "myrealm", "--public-key", "realm_public.pem"
    )
    assert (code, err) == (0, ""), err
    assert "myrealm created" in out
    code, out, _ = await cli(*hk, "realms", "list")
    assert out.split() == ["myrealm"]
    code, out, _ = await cli(*hk, "realms", "show", "myrealm")
    assert json.loads(out)["realm_name"] == "myrealm"

    rm = ("realm-management", "--realm", "myrealm", "--private-key", "realm.pem")
    code, out, err = await cli(*rm, "interfaces", "sync", str(STANDARD), "--yes")
    assert code == 0, err
    assert out.count("install") >= 6
    assert "Synced 6 interface(s)." in out
    code, out, _ = await cli(*rm, "interfaces", "list")
    names = sorted(json.loads(p.read_text())["interface_name"] for p in STANDARD.glob("*.json"))
    assert sorted(out.split()) == names
    code, out, _ = await cli(*rm, "interfaces", "sync", str(STANDARD), "--yes")
    assert "Everything is up to date." in out


async def test_sync_shows_plan_and_asks_before_changing(cli: Cli, tmp_path: Path) -> None:
    await cli(
        "housekeeping",
        "--private-key",
        "hk.pem",
        "realms",
        "create",
        "r1",
        "--public-key",
        "realm_public.pem",
    )
    rm = ("realm-management", "--realm", "r1", "--private-key", "realm.pem")
    folder = tmp_path / "ifaces"
    folder.mkdir()
    shutil.copy(STANDARD / "org.astarte-platform.genericsensors.Values.json", folder)
    code, out, err = await cli(*rm, "interfaces", "sync", str(folder), stdin="n\n")
    assert code == 1
    assert "org.astarte-platform.genericsensors.Values" in out and "install" in out
    assert "aborted" in err
    code, out, _ = await cli(*rm, "interfaces", "list")
    assert out.strip() == ""

    # a minor bump is planned as an update, a same-minor change as a conflict
    path = folder / "org.astarte-platform.genericsensors.Values.json"
    await cli(*rm, "interfaces", "install", str(path))
    doc = json.loads(path.read_text())
    doc["description"] = "changed without a version bump"
    path.write_text(json.dumps(doc))
    code, out, err = await cli(*rm, "interfaces", "sync", str(folder), "--yes")
    assert code == 1 and "conflict" in out
    doc["version_minor"] += 1
    path.write_text(json.dumps(doc))
    code, out, err = await cli(*rm, "interfaces", "sync", str(folder), "--yes")
    assert code == 0, err
    assert "update" in out
    code, out, _ = await cli(
        *rm, "interfaces", "show", doc["interface_name"], str(doc["version_major"])
    )
    assert json.loads(out)["description"] == "changed without a version bump"


async def test_interface_commands_and_one_line_errors(cli: Cli, tmp_path: Path) -> None:
    await cli(
        "housekeeping",
        "--private-key",
        "hk.pem",
        "realms",
        "create",
        "r2",
        "--public-key",
        "realm_public.pem",
    )
    rm = ("realm-management", "--realm", "r2", "--private-key", "realm.pem")
    doc = {
        "interface_name": "org.example.Cli",
        "version_major": 0,
        "version_minor": 1,
        "type": "properties",
        "ownership": "device",
        "mappings": [{"endpoint": "/on", "type": "boolean"}],
    }
    file = tmp_path / "cli.json"
    file.write_text(json.dumps(doc))
    assert (await cli(*rm, "interfaces", "install", str(file)))[0] == 0
    code, _out, err = await cli(*rm, "interfaces", "install", str(file))
    assert code == 1
    assert (
        err.strip() == "Error: POST /realmmanagement/v1/r2/interfaces: 409 Interface already exists"
    )
    assert (await cli(*rm, "interfaces", "versions", "org.example.Cli"))[1].split() == ["0"]
    doc["version_minor"] = 2
    file.write_text(json.dumps(doc))
    assert (await cli(*rm, "interfaces", "update", str(file)))[0] == 0
    assert (await cli(*rm, "interfaces", "delete", "org.example.Cli", "0"))[0] == 0

    file.write_text("{broken")
    code, _, err = await cli(*rm, "interfaces", "install", str(file))
    assert code == 1 and "not valid JSON" in err and "Traceback" not in err
    file.write_text(json.dumps({**doc, "interface_name": "Cli"}))
    code, _, err = await cli(*rm, "interfaces", "install", str(file))
    assert code == 1 and "interface_name" in err and len(err.strip().splitlines()) == 1

    code, _, err = await cli(
        "realm-management", "--realm", "r2", "--private-key", "hk.pem", "interfaces", "list"
    )
    assert code == 1 and "401" in err
    code, _, err = await cli("housekeeping", "--private-key", "missing.pem", "realms", "list")
    assert code == 1 and "cannot read private key" in err


async def test_unreachable_platform_is_one_line(tmp_path: Path, housekeeping_keys: KeyPair) -> None:
    (tmp_path / "hk.pem").write_text(housekeeping_keys.private_pem)
    cli = Cli("http://127.0.0.1:9", tmp_path)
    code, _, err = await cli("housekeeping", "--private-key", "hk.pem", "realms", "list")
    assert code == 1
    assert err.startswith("Error: cannot reach Astraea at http://127.0.0.1:9")
    assert "Traceback" not in err


async def _realm(cli: Cli, name: str) -> tuple[str, ...]:
    hk = ("housekeeping", "--private-key", "hk.pem")
    code, _, err = await cli(*hk, "realms", "create", name, "--public-key", "realm_public.pem")
    assert code == 0, err
    return ("realm-management", "--realm", name, "--private-key", "realm.pem")


async def test_sync_standard_installs_the_shipped_interfaces_and_reports(cli: Cli) -> None:
    rm = await _realm(cli, "std")
    code, out, err = await cli(*rm, "interfaces", "sync", "--standard", "--yes")
    assert code == 0, err
    names = sorted(json.loads(p.read_text())["interface_name"] for p in STANDARD.glob("*.json"))
    for name in names:
        assert f"Installed {name} v" in out
    code, out, _ = await cli(*rm, "interfaces", "list")
    assert sorted(out.split()) == names
    code, out, _ = await cli(*rm, "interfaces", "sync", "--standard", "--yes")
    assert code == 0 and "Everything is up to date." in out
    code, _, err = await cli(*rm, "interfaces", "sync", str(STANDARD), "--standard")
    assert code == 1 and err.strip() == "Error: give either a FOLDER or --standard"
    code, _, err = await cli(*rm, "interfaces", "sync")
    assert code == 1 and "--standard" in err


async def test_policies_and_triggers_list_show_install_delete(cli: Cli, tmp_path: Path) -> None:
    rm = await _realm(cli, "trg")
    policy = {
        "name": "retry3",
        "maximum_capacity": 100,
        "error_handlers": [{"on": "any_error", "strategy": "retry"}],
        "retry_times": 3,
    }
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    trigger = {
        "name": "on-connect",
        "action": {"http_url": "http://127.0.0.1:9/hook", "http_method": "post"},
        "simple_triggers": [{"type": "device_trigger", "on": "device_connected"}],
        "policy": "retry3",
    }
    (tmp_path / "trigger.json").write_text(json.dumps(trigger))

    code, out, err = await cli(*rm, "policies", "install", "policy.json")
    assert (code, out.strip()) == (0, "Installed trigger delivery policy retry3."), err
    code, _, err = await cli(*rm, "policies", "install", "policy.json")
    assert code == 1
    assert err.strip() == "Error: POST /realmmanagement/v1/trg/policies: 409 Policy already exists"
    code, out, err = await cli(*rm, "triggers", "install", "trigger.json")
    assert (code, out.strip()) == (0, "Installed trigger on-connect."), err
    assert (await cli(*rm, "policies", "list"))[1].split() == ["retry3"]
    assert (await cli(*rm, "triggers", "list"))[1].split() == ["on-connect"]
    code, out, _ = await cli(*rm, "policies", "show", "retry3")
    assert json.loads(out)["retry_times"] == 3
    code, out, _ = await cli(*rm, "triggers", "show", "on-connect")
    shown = json.loads(out)
    assert shown["policy"] == "retry3" and shown["simple_triggers"] == trigger["simple_triggers"]

    code, _, err = await cli(*rm, "policies", "delete", "retry3")
    assert code == 1 and "409" in err and "used by triggers" in err
    code, out, _ = await cli(*rm, "triggers", "delete", "on-connect")
    assert (code, out.strip()) == (0, "Deleted trigger on-connect.")
    code, out, _ = await cli(*rm, "policies", "delete", "retry3")
    assert (code, out.strip()) == (0, "Deleted trigger delivery policy retry3.")
    assert (await cli(*rm, "triggers", "list"))[1].strip() == ""
    code, _, err = await cli(*rm, "triggers", "show", "on-connect")
    assert code == 1 and err.strip().endswith("404 Trigger not found")
    code, _, err = await cli(*rm, "triggers", "delete", "a/b")
    assert code == 1 and "404" in err


async def test_trigger_and_policy_files_are_checked(cli: Cli, tmp_path: Path) -> None:
    rm = await _realm(cli, "bad")
    (tmp_path / "broken.json").write_text("{broken")
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "invalid.json").write_text(json.dumps({"name": "x", "simple_triggers": []}))
    cases = [
        ("triggers", "broken.json", "not valid JSON"),
        ("policies", "list.json", "must hold a JSON object"),
        ("triggers", "missing.json", "cannot read missing.json"),
        ("triggers", "invalid.json", "422"),
        ("policies", "invalid.json", "422 Invalid trigger policy"),
    ]
    for kind, file, message in cases:
        code, _, err = await cli(*rm, kind, "install", file)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert (await cli(*rm, "triggers", "list"))[1].strip() == ""
