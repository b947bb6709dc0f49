"""Scripts: parsing, and headless runs of ``python -m sample_game`` with the server absent and present."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from npc_runtime.emotion import EMOTIONS
from npc_runtime.errors import ConfigError
from sample_game.director import Command, Director, parse_script
from sample_game.game import OFFLINE, ONLINE
from sample_game.ui import STATUS_COLORS, status_light_center

SHORT_SCRIPT = """\
# two NPCs, a change of scene, an out-of-world question
walk_to blacksmith
say Do you sell swords?
time night
weather snow
hold torch
spawn wolf 2
walk_to guard
say Are you an AI?
suggest 1
"""
TRANSCRIPT_LINE = re.compile(
    r"^\[(?P<npc>[^\]]+)\] player: (?P<player>'.*'|\".*\") -> (?P<reply>'.*'|\".*\") "
    r"\((?P<emotion>[a-z]+) (?P<intensity>\d\.\d\d)\) first_token (?P<first>\d+) ms, total (?P<total>\d+) ms$"
)


def test_parse_script_reads_commands_and_skips_comments():
    commands = parse_script("# hi\n\nwalk_to guard   # go\nsay Hello there, friend!\nhold coin purse\nspawn crow 3\n")
    assert commands == [
        Command("walk_to", ("guard",), 3),
        Command("say", ("Hello there, friend!",), 4),
        Command("hold", ("coin", "purse"), 5),
        Command("spawn", ("crow", "3"), 6),
    ]


@pytest.mark.parametrize(
    "line",
    ["dance", "time dusk", "weather hail", "walk_to wizard", "hold bazooka", "spawn dragon", "spawn wolf 99",
     "walk 1", "wait soon", "suggest 4", "say", "latency maybe"],
)
def test_bad_script_lines_name_the_line(line):
    with pytest.raises(ConfigError, match=r"demo\.txt:2:"):
        parse_script("wait 1\n" + line, "demo.txt")


def test_the_bundled_demo_script_parses():
    from sample_game.__main__ import DEFAULT_SCRIPT

    commands = parse_script(DEFAULT_SCRIPT.read_text(encoding="utf-8"))
    names = [c.name for c in commands]
    assert len({c.args[0] for c in commands if c.name == "walk_to"}) >= 3
    assert {"time", "weather", "hold", "say"} <= set(names)
    assert any(c.name == "say" and "AI" in c.args[0] for c in commands)
    for script in DEFAULT_SCRIPT.parent.glob("*.txt"):
        assert parse_script(script.read_text(encoding="utf-8"), script.name), script.name


def test_director_walks_to_every_npc_in_process(pygame_headless, game):
    from sample_game.app import App

    app = App(game)
    out = io.StringIO()
    director = Director(app, out)
    director.status_wait_s = 0.0
    for persona in ("blacksmith", "merchant", "healer", "guard", "scholar", "innkeeper", "bard", "guide", "child"):
        director.run([Command("walk_to", (persona,), 1)])
        near = game.nearest_npc()
        assert near is not None and near.persona == persona, out.getvalue()


def light_color(pixels: np.ndarray) -> tuple[int, int, int]:
    """The colour at the centre of the status light in a screenshot."""
    x, y = status_light_center(pixels.shape[1])
    return tuple(int(v) for v in pixels[y, x])  # type: ignore[return-value]


def run_game(args: list[str], env: dict[str, str], timeout_s: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sample_game", *args], capture_output=True, text=True, env=env, timeout=timeout_s
    )


@pytest.mark.slow
def test_headless_run_without_a_server_shows_offline_and_exits_cleanly(tmp_path, free_endpoint, game_env):
    script = tmp_path / "script.txt"
    script.write_text(SHORT_SCRIPT, encoding="utf-8")
    shot = tmp_path / "offline.png"
    result = run_game(["--endpoint", free_endpoint, "--script", str(script), "--screenshot", str(shot)], game_env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "* server: offline" in out
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert len(lines) == 3 and all(line.endswith("(no reply: server offline)") for line in lines)
    assert "3 lines, 0 replies; server offline" in out
    # The status light in the panel is red.
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (720, 1280, 3)
    assert light_color(pixels) == STATUS_COLORS[OFFLINE]


@pytest.mark.slow
def test_headless_scripted_run_against_the_real_server(tmp_path, real_server, game_env):
    script = tmp_path / "script.txt"
    script.write_text(SHORT_SCRIPT, encoding="utf-8")
    shot = tmp_path / "online.png"
    result = run_game(["--endpoint", real_server, "--script", str(script), "--screenshot", str(shot)], game_env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "* server: online" in out
    exchanges = [TRANSCRIPT_LINE.match(line) for line in out.splitlines() if line.startswith("[")]
    assert len(exchanges) == 3 and all(exchanges), out
    assert [m["player"] for m in exchanges][:2] == ["'Do you sell swords?'", "'Are you an AI?'"]
    for match in exchanges:
        assert match["emotion"] in EMOTIONS
        assert 0.0 <= float(match["intensity"]) <= 1.0
        assert int(match["first"]) <= int(match["total"])
    assert "3 lines, 3 replies; server online" in out
    assert light_color(np.asarray(Image.open(shot).convert("RGB"))) == STATUS_COLORS[ONLINE]
