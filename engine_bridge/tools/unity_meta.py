"""Writes and checks the Unity `.meta` files of the UPM package in `engine_bridge/unity/`.

Unity needs a `.meta` beside every file and folder of an immutable package, and its GUID must never change
(scenes and prefabs refer to scripts by it). The GUID here is derived from the package name and the asset's
path, so it is stable and reviewable. Folders whose name ends in `~` are hidden from Unity's importer: they
get no `.meta` themselves, except `Samples~`, whose contents Unity copies into a project on import.

    python -m engine_bridge.tools.unity_meta --check   # exit 1 and list problems
    python -m engine_bridge.tools.unity_meta --write   # create or fix every .meta
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

__all__ = ["PACKAGE_DIR", "asset_paths", "guid_for", "meta_text", "problems", "write"]

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "unity"

_IMPORTERS = {
    ".cs": "MonoImporter",
    ".asmdef": "AssemblyDefinitionImporter",
    ".json": "TextScriptImporter",
    ".md": "TextScriptImporter",
}
_MONO_BODY = (
    "  externalObjects: {}\n"
    "  serializedVersion: 2\n"
    "  defaultReferences: []\n"
    "  executionOrder: 0\n"
    "  icon: {instanceID: 0}\n"
)
_COMMON_TAIL = "  userData: \n  assetBundleName: \n  assetBundleVariant: \n"


def _package_name(package_dir: Path) -> str:
    return json.loads((package_dir / "package.json").read_text(encoding="utf-8"))["name"]


def _hidden(relative: Path) -> bool:
    """True when Unity's importer never sees this path (a `~` folder other than Samples~, or a dot file)."""
    for i, part in enumerate(relative.parts):
        if part.startswith("."):
            return True
        if part.endswith("~") and not (i == 0 and part == "Samples~"):
            return True
    return False


def asset_paths(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Every file and folder that needs a `.meta`, relative to the package."""
    out: list[Path] = []
    for path in sorted(package_dir.rglob("*")):
        relative = path.relative_to(package_dir)
        if path.suffix == ".meta" or _hidden(relative) or relative == Path("Samples~"):
            continue
        out.append(relative)
    return out


def guid_for(package_name: str, relative: Path) -> str:
    return hashlib.md5(f"{package_name}/{relative.as_posix()}".encode()).hexdigest()


def meta_text(package_name: str, relative: Path, is_dir: bool) -> str:
    head = f"fileFormatVersion: 2\nguid: {guid_for(package_name, relative)}\n"
    if is_dir:
        return head + "folderAsset: yes\nDefaultImporter:\n  externalObjects: {}\n" + _COMMON_TAIL
    if relative == Path("package.json"):
        importer = "PackageManifestImporter"
    else:
        importer = _IMPORTERS.get(relative.suffix, "DefaultImporter")
    body = _MONO_BODY if importer == "MonoImporter" else "  externalObjects: {}\n"
    return head + f"{importer}:\n" + body + _COMMON_TAIL


def problems(package_dir: Path = PACKAGE_DIR) -> list[str]:
    """What is wrong with the package's `.meta` files; empty when all is well."""
    name = _package_name(package_dir)
    found: list[str] = []
    wanted = set()
    for relative in asset_paths(package_dir):
        meta = package_dir / (relative.as_posix() + ".meta")
        wanted.add(meta)
        expected = meta_text(name, relative, (package_dir / relative).is_dir())
        if not meta.is_file():
            found.append(f"missing {meta.relative_to(package_dir)}")
        elif meta.read_text(encoding="utf-8") != expected:
            found.append(f"stale {meta.relative_to(package_dir)}")
    for meta in sorted(package_dir.rglob("*.meta")):
        if meta not in wanted:
            found.append(f"orphan {meta.relative_to(package_dir)}")
    return found


def write(package_dir: Path = PACKAGE_DIR) -> int:
    """Creates or fixes every `.meta` and deletes orphans; returns how many files changed."""
    name = _package_name(package_dir)
    changed = 0
    wanted = set()
    for relative in asset_paths(package_dir):
        meta = package_dir / (relative.as_posix() + ".meta")
        wanted.add(meta)
        text = meta_text(name, relative, (package_dir / relative).is_dir())
        if not meta.is_file() or meta.read_text(encoding="utf-8") != text:
            meta.write_text(text, encoding="utf-8")
            changed += 1
    for meta in package_dir.rglob("*.meta"):
        if meta not in wanted:
            meta.unlink()
            changed += 1
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write or check the Unity package's .meta files.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true")
    mode.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    if args.write:
        print(f"{write()} .meta files written")
        return 0
    found = problems()
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
