"""The ``npc-runtime tree`` command: one tree to a file, many from a spec into a folder, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from npc_runtime import cli
from npc_runtime.errors import ConfigError
from npc_runtime.trees.checks import check_dialogue, check_twee, check_yarn
from npc_runtime.trees.model import DialogueTree
from npc_runtime.trees.spec import load_spec, parse_spec

COMMON = ["--depth", "1", "--branches", "2", "--max-tokens", "6", "--threads", "1", "--no-progress"]


def test_one_tree_to_a_file(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "guard.yarn"
    image = tmp_path / "view.png"
    Image.fromarray(np.full((16, 16, 3), 90, dtype=np.uint8)).save(image)
    argv = ["tree", "--persona", "guard", "--model", str(tiny_bundle), "--out", str(out), "--image", str(image),
            "--context", "time_of_day=night", "--opening", "Open the gate!", *COMMON]  # fmt: skip
    assert cli.main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    assert len(check_yarn(out.read_text(encoding="utf-8"))) == 1 + 2
    as_json = tmp_path / "guard.json"
    assert cli.main([*argv[:6], str(as_json), *argv[7:]]) == 0
    tree = DialogueTree.loads(as_json.read_text(encoding="utf-8"))
    assert tree.opening == "Open the gate!" and tree.context == {"time_of_day": "night"}
    assert len(tree.meta["image_sha256"]) == 64


def test_bad_arguments_fail_cleanly(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["tree", "--model", str(tiny_bundle), *COMMON]
    assert cli.main([*base, "--persona", "guard", "--out", str(tmp_path / "x.txt")]) == 1
    assert "format" in capsys.readouterr().err
    assert cli.main([*base, "--persona", "nobody", "--out", str(tmp_path / "x.ink")]) == 1
    assert "unknown persona" in capsys.readouterr().err
    assert cli.main([*base, "--persona", "guard", "--out", str(tmp_path / "x.ink"), "--context", "oops"]) == 1
    assert cli.main(["tree", "--model", str(tiny_bundle), "--persona", "guard", "--out", str(tmp_path / "x.ink"),
                     "--depth", "0"]) == 1  # fmt: skip
    assert not list(tmp_path.iterdir())
    with pytest.raises(SystemExit) as exc:
        cli.main(["tree", "--help"])
    assert exc.value.code == 0 and "--spec" in capsys.readouterr().out


SPEC = """
depth = 1
branches = 2
seed = 3
max_tokens = 6
formats = ["ink", "yarn", "twee", "dialogue", "json"]
out = "trees"
[context]
time_of_day = "evening"

[[trees]]
persona = "merchant"
opening = "Anything for sale?"
context = { player_item = "a lute" }

[[trees]]
persona = "merchant"

[[trees]]
persona = "guard"
id = "gate"
branches = 3
"""


def test_spec_writes_every_format_and_resumes(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    spec = tmp_path / "village.toml"
    spec.write_text(SPEC, encoding="utf-8")
    argv = ["tree", "--spec", str(spec), "--model", str(tiny_bundle), "--threads", "1", "--no-progress"]
    assert cli.main(argv) == 0
    assert "3 generated, 0 already done" in capsys.readouterr().out
    out = tmp_path / "trees"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{i}{s}" for i in ("merchant", "merchant-2", "gate")
                           for s in (".tree.json", ".ink", ".yarn", ".twee", ".dialogue"))  # fmt: skip
    gate = DialogueTree.loads((out / "gate.tree.json").read_text(encoding="utf-8"))
    assert len(gate.root.choices) == 3 and gate.context == {"time_of_day": "evening"}
    check_twee((out / "gate.twee").read_text(encoding="utf-8"))
    check_dialogue((out / "merchant.dialogue").read_text(encoding="utf-8"))
    before = {p.name: p.read_text(encoding="utf-8") for p in out.iterdir()}

    assert cli.main(argv) == 0  # nothing to redo
    assert "0 generated, 3 already done" in capsys.readouterr().out
    assert {p.name: p.read_text(encoding="utf-8") for p in out.iterdir()} == before

    spec.write_text(SPEC.replace('id = "gate"', 'id = "gate"\nseed = 4'), encoding="utf-8")
    (out / "merchant-2.tree.json").write_text("{broken", encoding="utf-8")
    assert cli.main(argv) == 0  # the changed tree and the broken one are made again
    assert "2 generated, 1 already done" in capsys.readouterr().out
    assert (out / "merchant.ink").read_text(encoding="utf-8") == before["merchant.ink"]
    assert DialogueTree.loads((out / "merchant-2.tree.json").read_text(encoding="utf-8")).id == "merchant-2"

    assert cli.main([*argv, "--restart", "--trees-at-once", "2"]) == 0
    assert "3 generated, 0 already done" in capsys.readouterr().out
    assert (out / "merchant.ink").read_text(encoding="utf-8") == before["merchant.ink"]  # same seed, same tree


def test_json_spec_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"trees": [{"persona": "bard", "image": "v.png"}], "formats": "ink"}), encoding="utf-8")
    spec = load_spec(path)
    assert spec.formats == ("ink",) and spec.out_dir == tmp_path / "s-trees"
    assert spec.entries[0].image == tmp_path / "v.png" and spec.entries[0].settings.depth == 3
    bad = [
        ({"trees": []}, "at least one"),
        ({"trees": [{"persona": "bard", "colour": 1}]}, "unknown key"),
        ({"trees": [{"persona": "bard", "depth": 0}]}, "depth"),
        ({"trees": [{"persona": "bard", "id": "x"}, {"persona": "bard", "id": "x"}]}, "unique"),
        ({"trees": [{"persona": "bard"}], "formats": ["pdf"]}, "formats"),
        ({"trees": [{"persona": "bard"}], "context": {"a": [1]}}, "context"),
        ({"trees": [{}]}, "persona"),
    ]
    for data, message in bad:
        with pytest.raises(ConfigError, match=message):
            parse_spec(data, tmp_path, tmp_path / "out")
    with pytest.raises(ConfigError, match="not found"):
        load_spec(tmp_path / "missing.toml")
