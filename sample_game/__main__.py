"""Command line of the Emberfall sample game: ``python -m sample_game --help``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from npc_runtime.errors import NpcRuntimeError
from sample_game.world import PLAYER_ITEMS, TIMES_OF_DAY, WEATHERS

DEFAULT_SCRIPT = Path(__file__).resolve().parent / "scripts" / "demo.txt"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sample_game",
        description="Emberfall: a pygame village whose NPCs talk through the NPC runtime over ZeroMQ.",
    )
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="NPC server endpoint (default: %(default)s)")
    p.add_argument("--spawn-server", action="store_true",
                   help="start `python -m npc_runtime serve` on a free loopback port for this run")
    p.add_argument("--model", help="with --spawn-server: model bundle folder (default: the bundled default model)")
    p.add_argument("--headless", action="store_true",
                   help="no window (SDL dummy drivers); plays --script, or the bundled demo script without one. "
                        "Chosen automatically when there is no DISPLAY/WAYLAND_DISPLAY")
    p.add_argument("--script", help="play this script (format in docs/sample_game.md)")
    p.add_argument("--screenshot", help="save a frame as PNG to this file at the end of the run")
    p.add_argument("--seed", type=int, default=0, help="village layout and creatures (default: %(default)s)")
    p.add_argument("--time", choices=TIMES_OF_DAY, default="morning", help="starting time of day")
    p.add_argument("--weather", choices=WEATHERS, default="clear", help="starting weather")
    p.add_argument("--item", choices=PLAYER_ITEMS, default="nothing", help="what the player holds at the start")
    p.add_argument("--day-length", type=float, default=90.0,
                   help="seconds per time of day in interactive play; 0 stops the clock (default: %(default)s)")
    p.add_argument("--jpeg", action="store_true", help="send the NPC's view as JPEG instead of PNG")
    p.add_argument("--reply-timeout", type=float, default=60.0, help="scripted lines wait this long for a reply")
    p.add_argument("--log-level", default="warning", help="debug, info, warning (default) or error")
    return p


def _no_display() -> bool:
    return sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    headless = args.headless or _no_display()
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        return _play(args, headless)
    except KeyboardInterrupt:  # Ctrl-C in the terminal quits like Esc, without a traceback
        return 130
    except NpcRuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _play(args: argparse.Namespace, headless: bool) -> int:
    import pygame

    from sample_game.app import App, init_pygame
    from sample_game.cast import load_cast
    from sample_game.dialogue import DONE
    from sample_game.director import Director, load_script
    from sample_game.game import Game, GameConfig
    from sample_game.net import NetConfig, NetWorker
    from sample_game.spawn import ServerProcess

    script = args.script or (str(DEFAULT_SCRIPT) if headless else None)
    commands = load_script(script) if script else []
    config = GameConfig(
        seed=args.seed,
        time_of_day=args.time,
        weather=args.weather,
        player_item=args.item,
        day_length_s=0.0 if headless else max(0.0, args.day_length),
        image_format="jpeg" if args.jpeg else "png",
    )
    server = ServerProcess(args.model) if args.spawn_server else None
    net: NetWorker | None = None
    try:
        endpoint = server.start() if server is not None else args.endpoint
        net = NetWorker(NetConfig(endpoint))
        net.start()
        init_pygame(headless)
        app = App(Game(config, load_cast(), net))
        if commands:
            director = Director(app, sys.stdout, reply_timeout_s=args.reply_timeout)
            exchanges = director.run(commands)
            replied = sum(1 for e in exchanges if e.state == DONE)
            print(f"* {len(exchanges)} lines, {replied} replies; server {app.game.status}")
        if not headless:
            app.run()
        if args.screenshot:
            app.frame()
            app.screenshot(args.screenshot)
    finally:
        if net is not None:
            net.stop()
        pygame.quit()
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
