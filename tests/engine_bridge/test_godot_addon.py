"""The Godot 4 addon: every GDScript file parses and lints with gdtoolkit, the plugin and scenes point at
real files, and, when a Godot 4 binary is on PATH, the headless GDScript tests (codec, ZMTP, real server)."""

from __future__ import annotations

import base64
import configparser
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import msgpack
import pytest

REPO = Path(__file__).resolve().parents[2]
GODOT_ROOT = REPO / "engine_bridge" / "godot"
ADDON = GODOT_ROOT / "addons" / "npc_dialogue"
RUNNER = Path(__file__).resolve().parent / "godot" / "npc_addon_tests.gd"
GDSCRIPT_FILES = sorted(GODOT_ROOT.rglob("*.gd")) + [RUNNER]
SUITE_SKIPPED = {"50.timestamp.yaml", "60.ext.yaml"}  # ext types are not part of the protocol
INT64_MAX = 2**63 - 1
GODOT_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def gdtoolkit(bridge):
    try:
        from gdtoolkit.linter import DEFAULT_CONFIG, lint_code
        from gdtoolkit.parser import parser
    except ImportError:
        bridge.need(False, "gdtoolkit 4 is not installed (pip install 'gdtoolkit>=4,<5')")
    return parser, lint_code, DEFAULT_CONFIG


@pytest.mark.parametrize("path", GDSCRIPT_FILES, ids=lambda p: p.name)
def test_gdscript_parses_and_lints(gdtoolkit, path: Path) -> None:
    parser, lint_code, config = gdtoolkit
    code = path.read_text(encoding="utf-8")
    parser.parse(code)  # raises on a syntax error
    problems = lint_code(code, config)
    assert not problems, "\n".join(f"{path.name}:{p.line}: {p.description} ({p.name})" for p in problems)


def test_linter_would_notice_a_problem(gdtoolkit) -> None:
    _, lint_code, config = gdtoolkit
    assert lint_code("func BadName():\n\tpass\n", config), "the lint test above could never fail"


def test_addon_scripts_are_typed_tools_with_prefixed_class_names() -> None:
    for path in sorted(ADDON.rglob("*.gd")):
        code = path.read_text(encoding="utf-8")
        match = re.search(r"^class_name\s+(\w+)", code, re.MULTILINE)
        if match:
            assert match.group(1).startswith("Npc"), f"{path.name}: class_name must be prefixed Npc"
        if "example" not in path.parts:
            assert code.startswith("@tool\n"), f"{path.name} must be a tool script (the dock runs it in the editor)"
        for line in code.splitlines():
            if re.match(r"\s*assert\(", line):
                pytest.fail(f"{path.name}: assert is stripped from release builds")
        # Every function declares its return type (statically typed GDScript).
        for func_name, returns in re.findall(
            r"^(?:static )?func (\w+)\(.*?\)\s*(->\s*[\w\[\]]+)?\s*:$", code, re.MULTILINE | re.DOTALL
        ):
            assert returns, f"{path.name}: {func_name} has no return type"


def test_plugin_cfg_names_its_script() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ADDON / "plugin.cfg", encoding="utf-8")
    plugin = cfg["plugin"]
    assert plugin["name"].strip('"') == "NPC Dialogue"
    assert re.fullmatch(r'"\d+\.\d+\.\d+"', plugin["version"])
    assert (ADDON / plugin["script"].strip('"')).is_file()
    code = (ADDON / "plugin.gd").read_text(encoding="utf-8")
    assert "add_autoload_singleton" in code and "remove_autoload_singleton" in code
    assert "add_control_to_dock" in code and "remove_control_from_docks" in code


def test_res_paths_point_at_files() -> None:
    files = [*GODOT_ROOT.rglob("*.tscn"), *GODOT_ROOT.rglob("*.gd"), GODOT_ROOT / "project.godot"]
    seen = 0
    for path in files:
        for ref in re.findall(r'res://([^"\s)]+)', path.read_text(encoding="utf-8")):
            seen += 1
            assert (GODOT_ROOT / ref).exists(), f"{path.name} refers to missing res://{ref}"
    assert seen >= 4
    assert list((ADDON / "example").glob("*.tscn")), "the addon ships an example scene"


# ------------------------------------------------------------------------------------------ headless Godot


def find_godot() -> str | None:
    for name in ("godot4", "godot", "godot-headless"):
        path = shutil.which(name)
        if path is None:
            continue
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60).stdout
        if version.strip().startswith("4."):
            return path
    return None


def typed(value):
    """A suite value in a JSON form GDScript can read without losing 64-bit ints or the int/float split."""
    if value is None:
        return {"t": "nil"}
    if isinstance(value, bool):
        return {"t": "bool", "v": value}
    if isinstance(value, int):
        return {"t": "int", "v": str(value)}
    if isinstance(value, float):
        return {"t": "float", "v": repr(value)}
    if isinstance(value, str):
        return {"t": "str", "v": value}
    if isinstance(value, bytes):
        return {"t": "bin", "v": value.hex()}
    if isinstance(value, list):
        return {"t": "array", "v": [typed(v) for v in value]}
    return {"t": "map", "v": [[k, typed(v)] for k, v in value.items()]}


def suite_cases(suite_json: Path) -> list[dict]:
    """The msgpack-test-suite cases the protocol's types cover, with the bytes our encoders must write."""
    cases = []
    for file_name, entries in json.loads(suite_json.read_text(encoding="utf-8")).items():
        if file_name in SUITE_SKIPPED:
            continue
        for n, entry in enumerate(entries):
            if "bignum" in entry:
                value = int(entry["bignum"])
            elif "binary" in entry:
                value = bytes.fromhex(entry["binary"].replace("-", ""))
            else:
                kind = next(k for k in ("nil", "bool", "number", "string", "array", "map") if k in entry)
                value = entry[kind]
            if isinstance(value, int) and not isinstance(value, bool) and value > INT64_MAX:
                continue  # GDScript ints are signed 64-bit; the protocol never sends such values
            encodings = [e.replace("-", "") for e in entry["msgpack"]]
            canonical = msgpack.packb(value, use_bin_type=True).hex()
            assert canonical in encodings or (isinstance(value, float) and math.isfinite(value))
            cases.append(
                {"name": f"{file_name}#{n}", "value": typed(value), "encodings": encodings, "canonical": canonical}
            )
    return cases


def prepare_project(tmp_path: Path, fixtures_dir: Path, suite_json: Path) -> tuple[Path, Path]:
    project = tmp_path / "project"
    shutil.copytree(ADDON, project / "addons" / "npc_dialogue")
    (project / "tests").mkdir()
    shutil.copy(RUNNER, project / "tests" / RUNNER.name)
    # No autoload and no editor plugin: the runner builds the client it tests.
    (project / "project.godot").write_text('config_version=5\n\n[application]\n\nconfig/name="npc tests"\n')
    data = tmp_path / "data"
    shutil.copytree(fixtures_dir, data / "fixtures", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (data / "suite_typed.json").write_text(json.dumps(suite_cases(suite_json)), encoding="utf-8")
    shutil.copy(REPO / "engine_bridge" / "zmtp_vectors.json", data / "zmtp_vectors.json")
    return project, data


def test_suite_cases_for_godot_cover_the_protocol_types(msgpack_suite) -> None:
    kinds = {case["value"]["t"] for case in suite_cases(msgpack_suite)}
    assert kinds == {"nil", "bool", "int", "float", "str", "bin", "array", "map"}


@pytest.fixture(scope="session")
def godot() -> str:
    """A Godot 4 binary. Not installable from the registries CI reaches, so this skips even under
    NPC_REQUIRE_TOOLCHAINS=1; the skip reason says the GDScript runtime tests did not run."""
    path = find_godot()
    if path is None:
        pytest.skip("no Godot 4 binary on PATH (godot4/godot); the GDScript runtime tests did not run")
    return path


def test_godot_headless(godot, tmp_path, fixtures_dir, msgpack_suite, npc_server) -> None:
    project, data = prepare_project(tmp_path, fixtures_dir, msgpack_suite)
    # Importing registers the addon's class_names in the project's global class cache.
    subprocess.run(
        [godot, "--headless", "--path", str(project), "--import"], capture_output=True, timeout=GODOT_TIMEOUT_S
    )
    result = subprocess.run(
        [godot, "--headless", "--path", str(project), "--script", "res://tests/npc_addon_tests.gd",
         "--", "--data", str(data), "--endpoint", npc_server.endpoint],
        capture_output=True,
        text=True,
        timeout=GODOT_TIMEOUT_S,
    )
    lines = result.stdout.splitlines()
    summary = [line for line in lines if re.fullmatch(r"\d+ passed, \d+ failed", line)]
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert summary and summary[-1].endswith(" 0 failed") and result.returncode == 0, report
    assert not [line for line in lines if line.startswith("FAIL")], report


def test_bin_fixture_twin_convention(fixtures_dir) -> None:
    """The GDScript runner reads {"$bin": base64} twins; hold the convention it relies on."""
    twin = json.loads((fixtures_dir / "say_full.json").read_text(encoding="utf-8"))
    raw = base64.b64decode(twin["image"]["data"]["$bin"])
    assert msgpack.unpackb((fixtures_dir / "say_full.msgpack").read_bytes())["image"]["data"] == raw
