"""The Unity package as Unity would see it: UPM layout, asmdefs, stable .meta GUIDs, and the Unity layer,
Editor code and sample compiling against a stub of the UnityEngine/UnityEditor types they use."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from engine_bridge.tools import unity_meta

REPO = Path(__file__).resolve().parents[2]
UNITY = REPO / "engine_bridge" / "unity"
STUBS = Path(__file__).resolve().parent / "unity_stubs"
MCS = ["-langversion:7.2", "-nologo", "-warnaserror+", "-debug-"]


def test_package_json_is_upm() -> None:
    manifest = json.loads((UNITY / "package.json").read_text(encoding="utf-8"))
    assert re.fullmatch(r"com(\.[a-z0-9-]+){2,}", manifest["name"]), "reverse-domain, lowercase"
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert re.fullmatch(r"\d{4}\.\d", manifest["unity"])
    for sample in manifest["samples"]:
        assert (UNITY / sample["path"]).is_dir(), sample["path"]
        assert sample["path"].startswith("Samples~/")


def test_every_code_folder_has_one_asmdef_and_references_resolve() -> None:
    asmdefs = {}
    for folder in ("Runtime/Core", "Runtime/Unity", "Editor", "Tests/Core", "Samples~/BasicNpc"):
        found = list((UNITY / folder).glob("*.asmdef"))
        assert len(found) == 1, f"{folder} needs exactly one .asmdef"
        data = json.loads(found[0].read_text(encoding="utf-8"))
        assert found[0].stem == data["name"]
        asmdefs[data["name"]] = data
    unity_owned = {"UnityEngine.TestRunner", "UnityEditor.TestRunner"}
    for name, data in asmdefs.items():
        for ref in data["references"]:
            assert ref in asmdefs or ref in unity_owned, f"{name} references unknown assembly {ref}"
    assert asmdefs["NpcDialogue.Core"]["noEngineReferences"] is True
    assert asmdefs["NpcDialogue.Editor"]["includePlatforms"] == ["Editor"]
    assert "UNITY_INCLUDE_TESTS" in asmdefs["NpcDialogue.Core.Tests"]["defineConstraints"]


def test_meta_files_are_complete_and_stable() -> None:
    assert unity_meta.problems() == [], "run: python -m engine_bridge.tools.unity_meta --write"
    metas = [meta.read_text(encoding="utf-8") for meta in UNITY.rglob("*.meta")]
    guids = [line.split(": ")[1] for text in metas for line in text.splitlines() if line.startswith("guid: ")]
    assert len(guids) == len(set(guids)) > 20
    # Pinned: scenes that use NpcSpeaker refer to it by this GUID; changing it breaks every user's scenes.
    speaker_meta = (UNITY / "Runtime" / "Unity" / "NpcSpeaker.cs.meta").read_text(encoding="utf-8")
    assert "guid: 9d60e32fcd1fc4d41bea0255c12340a0\n" in speaker_meta


def test_meta_checker_notices_a_missing_meta(tmp_path) -> None:
    package = tmp_path / "pkg"
    (package / "Runtime").mkdir(parents=True)
    (package / "package.json").write_text('{"name": "com.example.pkg"}', encoding="utf-8")
    (package / "Runtime" / "A.cs").write_text("class A {}", encoding="utf-8")
    (package / "Hidden~").mkdir()
    (package / "Hidden~" / "B.cs").write_text("class B {}", encoding="utf-8")
    assert unity_meta.write(package) == 3
    assert unity_meta.problems(package) == []
    (package / "Runtime" / "A.cs.meta").unlink()
    (package / "Stray.cs.meta").write_text("x", encoding="utf-8")
    assert unity_meta.problems(package) == ["missing Runtime/A.cs.meta", "orphan Stray.cs.meta"]


@pytest.fixture(scope="module")
def build_assembly(bridge, tmp_path_factory):
    """A function that compiles sources into a library next to the stub UnityEngine/UnityEditor and the core."""
    mcs = bridge.need_tool("mcs")
    out = tmp_path_factory.mktemp("unity_layer")

    def build(name: str, sources: list[Path], refs: list[str], strict: bool = True) -> None:
        flags = MCS if strict else [f for f in MCS if f != "-warnaserror+"]
        cmd = [mcs, *flags, "-target:library", f"-out:{out / name}"]
        cmd += [f"-r:{out / r}" for r in refs] + [str(s) for s in sources]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{name} does not compile:\n{result.stdout}\n{result.stderr}"

    build("UnityEngine.dll", [STUBS / "UnityEngine.cs"], [], strict=False)
    build("UnityEditor.dll", [STUBS / "UnityEditor.cs"], ["UnityEngine.dll"], strict=False)
    build("NpcDialogue.Core.dll", sorted((UNITY / "Runtime" / "Core").glob("*.cs")), [])
    return build


def test_unity_layer_editor_and_sample_compile_against_the_stub(build_assembly) -> None:
    build = build_assembly
    build(
        "NpcDialogue.Runtime.dll",
        sorted((UNITY / "Runtime" / "Unity").glob("*.cs")),
        ["UnityEngine.dll", "NpcDialogue.Core.dll"],
    )
    build(
        "NpcDialogue.Editor.dll",
        sorted((UNITY / "Editor").glob("*.cs")),
        ["UnityEngine.dll", "UnityEditor.dll", "NpcDialogue.Core.dll", "NpcDialogue.Runtime.dll"],
    )
    build(
        "NpcDialogue.Samples.BasicNpc.dll",
        sorted((UNITY / "Samples~" / "BasicNpc").glob("*.cs")),
        ["UnityEngine.dll", "NpcDialogue.Core.dll", "NpcDialogue.Runtime.dll"],
    )


def test_runtime_layer_does_not_use_the_editor(bridge) -> None:
    for path in (UNITY / "Runtime").rglob("*.cs"):
        assert "UnityEditor" not in path.read_text(encoding="utf-8"), f"{path.name} would break player builds"
