import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jwt
import pytest
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner, Result

from astraea.cli.output import fail, print_json, print_table, print_text
from astraea.cli.utils import app
from astraea.core.device_id import device_id_to_uuid, is_valid_device_id
from astraea.jwt_tokens import API_CLAIMS, TokenError, mint_token

ALL_CLAIM_KEYS = {"a_ha", "a_rma", "a_pa", "a_aea", "a_ch"}


@pytest.fixture(autouse=True)
def _plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep rich from emitting colour codes, whatever the environment running the tests."""
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(var, raising=False)


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def _private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def rsa_key_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "rsa.pem"
    path.write_text(_private_pem(rsa_key))
    return path


@pytest.fixture
def ec_key_file(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> Path:
    path = tmp_path / "ec.pem"
    path.write_text(_private_pem(ec_key))
    return path


# --- gen-keypair ---------------------------------------------------------------------------


def _split_pems(text: str) -> tuple[str, str]:
    marker = "-----BEGIN PUBLIC KEY-----"
    assert text.index("-----BEGIN PRIVATE KEY-----") < text.index(marker)
    private, public = text.split(marker)
    return private, marker + public


def test_gen_keypair_default_is_ec_p256_printed_private_then_public() -> None:
    result = run("gen-keypair")
    assert result.exit_code == 0, result.output
    private_pem, public_pem = _split_pems(result.stdout)
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert _public_pem(key) == public_pem


def test_gen_keypair_rsa() -> None:
    result = run("gen-keypair", "--algorithm", "rsa")
    assert result.exit_code == 0, result.output
    private_pem, public_pem = _split_pems(result.stdout)
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size >= 2048
    assert _public_pem(key) == public_pem


def test_gen_keypair_out_writes_files(tmp_path: Path) -> None:
    prefix = tmp_path / "realm"
    result = run("gen-keypair", "--out", str(prefix))
    assert result.exit_code == 0, result.output
    private_path, public_path = tmp_path / "realm.pem", tmp_path / "realm_public.pem"
    assert str(private_path) in result.stdout and str(public_path) in result.stdout
    assert "PRIVATE KEY" not in result.stdout
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert _public_pem(key) == public_path.read_text()


@pytest.mark.parametrize("existing", ["realm.pem", "realm_public.pem"])
def test_gen_keypair_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("keep me")
    result = run("gen-keypair", "--out", str(tmp_path / "realm"))
    assert_one_line_error(result, existing, "already exists")
    assert (tmp_path / existing).read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_gen_keypair_unwritable_directory(tmp_path: Path) -> None:
    result = run("gen-keypair", "--out", str(tmp_path / "missing" / "realm"))
    assert_one_line_error(result, "cannot write", "realm.pem")


def test_gen_keypair_unknown_algorithm_is_a_usage_error() -> None:
    result = run("gen-keypair", "--algorithm", "dsa")
    assert result.exit_code == 2


# --- gen-jwt -------------------------------------------------------------------------------


def test_gen_jwt_rs256_verifies_and_carries_claims(
    rsa_key_file: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    before = int(time.time())
    result = run("gen-jwt", "appengine", "--private-key", str(rsa_key_file))
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, _public_pem(rsa_key), algorithms=["RS256"])
    assert claims["a_aea"] == [".*::.*"]
    assert set(claims) == {"a_aea", "iat", "exp"}
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 300


def test_gen_jwt_es256_verifies(ec_key_file: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    result = run("gen-jwt", "pairing", "realm-management", "-k", str(ec_key_file), "-e", "60")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    claims = jwt.decode(token, _public_pem(ec_key), algorithms=["ES256"])
    assert claims["a_pa"] == claims["a_rma"] == [".*::.*"]
    assert set(claims) == {"a_pa", "a_rma", "iat", "exp"}
    assert claims["exp"] == claims["iat"] + 60


def test_gen_jwt_does_not_verify_with_another_key(rsa_key_file: Path) -> None:
    token = run("gen-jwt", "appengine", "-k", str(rsa_key_file)).stdout.strip()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, _public_pem(other), algorithms=["RS256"])


def test_gen_jwt_zero_expiry_omits_exp(
    ec_key_file: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    result = run("gen-jwt", "housekeeping", "-k", str(ec_key_file), "--expiry", "0")
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.stdout.strip(), _public_pem(ec_key), algorithms=["ES256"])
    assert set(claims) == {"a_ha", "iat"}


def test_gen_jwt_all_grants_every_api(
    ec_key_file: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    result = run("gen-jwt", "all", "-k", str(ec_key_file))
    claims = jwt.decode(result.stdout.strip(), _public_pem(ec_key), algorithms=["ES256"])
    assert set(claims) == ALL_CLAIM_KEYS | {"iat", "exp"}
    assert claims["a_ch"] == ["JOIN::.*", "WATCH::.*"]
    assert all(claims[k] == [".*::.*"] for k in ALL_CLAIM_KEYS - {"a_ch"})


def test_gen_jwt_all_realm_apis_excludes_housekeeping(
    ec_key_file: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    result = run("gen-jwt", "all-realm-apis", "channels", "-k", str(ec_key_file))
    claims = jwt.decode(result.stdout.strip(), _public_pem(ec_key), algorithms=["ES256"])
    assert set(claims) == ALL_CLAIM_KEYS - {"a_ha"} | {"iat", "exp"}


def test_gen_jwt_custom_claims_apply_to_every_service(
    rsa_key_file: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    result = run(
        "gen-jwt",
        "appengine",
        "channels",
        "-k",
        str(rsa_key_file),
        "--claim",
        "GET::devices/.*",
        "-c",
        "WATCH::a:b",
    )
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.stdout.strip(), _public_pem(rsa_key), algorithms=["RS256"])
    assert claims["a_aea"] == claims["a_ch"] == ["GET::devices/.*", "WATCH::a:b"]


def test_gen_jwt_missing_key_file(tmp_path: Path) -> None:
    result = run("gen-jwt", "appengine", "-k", str(tmp_path / "nope.pem"))
    assert_one_line_error(result, "cannot read private key", "nope.pem")


def test_gen_jwt_key_is_a_directory(tmp_path: Path) -> None:
    assert_one_line_error(run("gen-jwt", "appengine", "-k", str(tmp_path)), "cannot read")


@pytest.mark.parametrize(
    "content",
    [
        b"not a key\n",
        b"\xff\xfe\x00binary",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ],
)
def test_gen_jwt_not_a_key(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    assert_one_line_error(
        run("gen-jwt", "appengine", "-k", str(path)), "not a PEM-encoded private key"
    )


def test_gen_jwt_public_key_instead_of_private(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    path = tmp_path / "public.pem"
    path.write_text(_public_pem(ec_key))
    assert_one_line_error(run("gen-jwt", "appengine", "-k", str(path)), "not a PEM-encoded")


def test_gen_jwt_encrypted_key(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    path = tmp_path / "encrypted.pem"
    path.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    assert_one_line_error(run("gen-jwt", "appengine", "-k", str(path)), "password-protected")


def test_gen_jwt_unsupported_curve(tmp_path: Path) -> None:
    path = tmp_path / "k1.pem"
    path.write_text(_private_pem(ec.generate_private_key(ec.SECP256K1())))
    assert_one_line_error(run("gen-jwt", "appengine", "-k", str(path)), "unsupported EC curve")


@pytest.mark.parametrize(
    ("claim", "fragment"),
    [
        ("GET", "VERB::regex"),
        ("GET:devices", "VERB::regex"),
        ("GET::(", "invalid regex"),
        ("*::x", "invalid regex"),
    ],
)
def test_gen_jwt_rejects_malformed_claims(rsa_key_file: Path, claim: str, fragment: str) -> None:
    result = run("gen-jwt", "appengine", "-k", str(rsa_key_file), "--claim", claim)
    assert_one_line_error(result, fragment)


@pytest.mark.parametrize(
    "args",
    [
        ["gen-jwt", "bogus", "-k", "key.pem"],
        ["gen-jwt", "appengine"],
        ["gen-jwt", "-k", "key.pem"],
        ["gen-jwt", "appengine", "-k", "key.pem", "--expiry", "-1"],
        ["gen-jwt", "appengine", "-k", "key.pem", "--expiry", "soon"],
    ],
)
def test_gen_jwt_usage_errors_exit_2(args: list[str]) -> None:
    assert run(*args).exit_code == 2


# --- mint_token ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("curve", "algorithm"),
    [(ec.SECP256R1(), "ES256"), (ec.SECP384R1(), "ES384"), (ec.SECP521R1(), "ES512")],
)
def test_mint_token_picks_ec_algorithm(curve: ec.EllipticCurve, algorithm: str) -> None:
    key = ec.generate_private_key(curve)
    token = mint_token(_private_pem(key), ["appengine"], now=1_000, expiry_seconds=None)
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    claims = jwt.decode(token, _public_pem(key), algorithms=[algorithm])
    assert claims == {"a_aea": [".*::.*"], "iat": 1_000}


def test_mint_token_pins_time_and_claims(rsa_key: rsa.RSAPrivateKey) -> None:
    now = int(time.time())
    token = mint_token(
        _private_pem(rsa_key), ["channels", "pairing"], claims=["JOIN::r.*"], now=now + 0.7
    )
    claims = jwt.decode(token, _public_pem(rsa_key), algorithms=["RS256"])
    assert claims == {"a_ch": ["JOIN::r.*"], "a_pa": ["JOIN::r.*"], "iat": now, "exp": now + 300}


def test_api_claims_match_astarte() -> None:
    assert API_CLAIMS == {
        "housekeeping": "a_ha",
        "realm-management": "a_rma",
        "pairing": "a_pa",
        "appengine": "a_aea",
        "channels": "a_ch",
    }


@pytest.mark.parametrize(
    ("services", "expiry", "fragment"),
    [([], 300, "at least one"), (["flow"], 300, "unknown service"), (["pairing"], -5, "expiry")],
)
def test_mint_token_errors(
    ec_key: ec.EllipticCurvePrivateKey, services: list[str], expiry: int, fragment: str
) -> None:
    with pytest.raises(TokenError, match=fragment):
        mint_token(_private_pem(ec_key), services, expiry_seconds=expiry)


# --- device-id -----------------------------------------------------------------------------


def test_device_id_generate_random() -> None:
    first, second = run("device-id", "generate-random"), run("device-id", "generate-random")
    assert first.exit_code == second.exit_code == 0
    device_id = first.stdout.strip()
    assert first.stdout == device_id + "\n"
    assert is_valid_device_id(device_id)
    assert device_id_to_uuid(device_id).version == 4
    assert device_id != second.stdout.strip()


def test_device_id_namespaced() -> None:
    result = run("device-id", "namespaced", str(uuid.NAMESPACE_DNS), "python.org")
    assert result.exit_code == 0, result.output
    assert result.stdout == "iGMT4TuKU3KbkAya7hmeXQ\n"


def test_device_id_namespaced_bad_namespace() -> None:
    assert_one_line_error(run("device-id", "namespaced", "not-a-uuid", "x"), "not a valid UUID")


def test_device_id_to_uuid_documentation_example() -> None:
    result = run("device-id", "to-uuid", "k3oPTXaGGGGGGGGGGGGGGG")
    assert result.exit_code == 0, result.output
    assert result.stdout == "937a0f4d-7686-1861-8618-618618618618\n"


@pytest.mark.parametrize(
    ("device_id", "fragment"),
    [
        ("k3oPTXaGGGGGGGGGGGGGGG==", "not a valid device id"),
        ("k3oPTXaG", "shorter than 128 bits"),
        ("k3oPTXaGGGGGGGGGGGGGGGGGGGG", "too long"),
        ("k3oPTXaGGGGGG+GGGGGGGG", "not a valid device id"),
    ],
)
def test_device_id_to_uuid_invalid(device_id: str, fragment: str) -> None:
    assert_one_line_error(run("device-id", "to-uuid", device_id), fragment)


def test_device_id_from_uuid() -> None:
    result = run("device-id", "from-uuid", "937a0f4d-7686-1861-8618-618618618618")
    assert result.exit_code == 0, result.output
    assert result.stdout == "k3oPTXaGGGGGGGGGGGGGGA\n"


def test_device_id_from_uuid_invalid() -> None:
    assert_one_line_error(
        run("device-id", "from-uuid", "937a0f4d"), "'937a0f4d' is not a valid UUID"
    )


@pytest.mark.parametrize("args", [["device-id", "to-uuid"], ["device-id", "namespaced", "x"]])
def test_device_id_usage_errors_exit_2(args: list[str]) -> None:
    assert run(*args).exit_code == 2


# --- as a real process ---------------------------------------------------------------------


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    return subprocess.run(
        [sys.executable, "-c", "from astraea.cli.utils import app; app()", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_subprocess_keypair_token_and_ids(tmp_path: Path) -> None:
    keys = _cli(tmp_path, "gen-keypair", "--algorithm", "rsa", "--out", "test")
    assert keys.returncode == 0, keys.stderr
    assert stat.S_IMODE((tmp_path / "test.pem").stat().st_mode) == 0o600

    minted = _cli(tmp_path, "gen-jwt", "all-realm-apis", "-k", "test.pem", "-e", "3600")
    assert minted.returncode == 0, minted.stderr
    claims = jwt.decode(
        minted.stdout.strip(), (tmp_path / "test_public.pem").read_text(), algorithms=["RS256"]
    )
    assert claims["exp"] == claims["iat"] + 3600
    assert "a_ha" not in claims and claims["a_rma"] == [".*::.*"]

    generated = _cli(tmp_path, "device-id", "generate-random")
    device_id = generated.stdout.strip()
    as_uuid = _cli(tmp_path, "device-id", "to-uuid", device_id)
    back = _cli(tmp_path, "device-id", "from-uuid", as_uuid.stdout.strip())
    assert back.stdout.strip() == device_id


def test_subprocess_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    result = _cli(tmp_path, "device-id", "to-uuid", "AAAA")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "Error: 'AAAA' is not a valid device id: shorter than 128 bits"
    ]

    usage = _cli(tmp_path, "gen-jwt", "nope", "-k", "x.pem")
    assert usage.returncode == 2
    assert "Traceback" not in usage.stderr


# --- output helpers ------------------------------------------------------------------------


def test_print_text_is_verbatim(capsys: pytest.CaptureFixture[str]) -> None:
    print_text("[bold]x[/bold] " + "y" * 300)
    assert capsys.readouterr().out == "[bold]x[/bold] " + "y" * 300 + "\n"


def test_print_json(capsys: pytest.CaptureFixture[str]) -> None:
    data = {"id": "iGMT4TuKU3KbkAya7hmeXQ", "n": [1, 2], "u": uuid.NAMESPACE_DNS, "s": "[red]"}
    print_json(data)
    assert json.loads(capsys.readouterr().out) == {**data, "u": str(uuid.NAMESPACE_DNS)}


def test_print_table(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["name", "value"], [["alpha", 1], ["[beta]", None]], title="things")
    out = capsys.readouterr().out
    for text in ("things", "name", "value", "alpha", "1", "[beta]"):
        assert text in out


def test_fail_prints_one_line_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as info:
        fail("first line\nsecond [red]line[/red] " + "z" * 200)
    assert info.value.exit_code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "Error: first line second [red]line[/red] " + "z" * 200 + "\n"
