"""The ``npc-runtime`` command: serve, talk to a server, manage personas, and the model tool chain.

This is the only module that configures logging. Commands that need PyTorch (``train``, ``export``, ``eval``)
import ``export/`` lazily, so serving never loads torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import NpcRuntimeError, RequestFailed

__all__ = ["main", "build_parser", "default_data_dir"]

log = logging.getLogger("npc_runtime.cli")

#: Subcommands implemented in ``export/`` (module, help); each module has ``main(argv) -> int`` with its own
#: argparse parser, so ``npc-runtime train --help`` is answered there and the CLI never imports them up front.
EXPORT_COMMANDS = {
    "train": ("export.train", "train the role model (needs the export extra: torch)"),
    "export": ("export.make_bundle", "export a trained checkpoint to a model bundle (needs torch)"),
    "eval": ("export.evaluate", "evaluate a bundle offline on held-out data; writes docs/eval.md"),
    "reader-cv": (
        "export.reader_cv",
        "choose the intent reader's phrasings and fit by cross-validation over the training templates",
    ),
    "import-hf": ("export.hf_import", "import a local Hugging Face causal LM as a causal-lm bundle (needs torch)"),
    "bench-hf": (
        "export.bench_hf",
        "benchmark a Hugging Face causal LM served here against transformers and onnxruntime-genai (needs torch)",
    ),
}


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "npc-runtime"


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


# ------------------------------------------------------------------------------------------------ serve


def _cmd_serve(args: argparse.Namespace) -> int:
    from .bundle import default_bundle_dir, load_bundle
    from .engine import load_engine
    from .ort_backend import RuntimeOptions
    from .personas import PersonaPack, default_pack_dir
    from .protocol import Limits
    from .scheduler import STEERING_LIMITS, GenOptions, SchedulerConfig, steering_errors
    from .server import NpcServer, ServerConfig
    from .sessions import SessionStore

    if args.no_repeat_ngram < 0:
        raise SystemExit(f"npc-runtime serve: --no-repeat-ngram must be 0 (off) or more, got {args.no_repeat_ngram}")
    for error in steering_errors({name: getattr(args, name) for name in STEERING_LIMITS}):
        raise SystemExit(f"npc-runtime serve: --{error.replace('_', '-', 1)}")
    model_dir = Path(args.model) if args.model else default_bundle_dir()
    bundle = load_bundle(model_dir)
    personas = PersonaPack.load(args.personas or default_pack_dir())
    data_dir = Path(args.data) if args.data else default_data_dir()
    store = SessionStore(data_dir / "sessions.sqlite3", max_turns=args.history_turns)
    options = RuntimeOptions(
        device=args.device,
        intra_op_threads=args.threads,
        optimized_cache_dir=str(data_dir / "ort-cache") if args.cache_optimized else None,
        kv_cache=args.kv_cache,
    )
    engine = load_engine(bundle, options, spelling=not args.no_spelling)
    if engine.provider == "CUDAExecutionProvider":
        log.info("execution provider: CUDAExecutionProvider (KV cache in %s memory)",
                 "GPU" if getattr(engine, "kv_cache", "host") == "device" else "host")
    else:
        why = f" ({engine.cpu_reason})" if engine.cpu_reason else ""
        log.info("execution provider: CPUExecutionProvider%s", why)
    config = ServerConfig(
        limits=Limits(),
        defaults=GenOptions(ignore_eos=args.ignore_eos, no_repeat_ngram=args.no_repeat_ngram,
                            voice_bias=args.voice_bias, catchphrase_rate=args.catchphrase_rate,
                            fact_bias=args.fact_bias,
                            scene_bias=args.scene_bias),
        scheduler=SchedulerConfig(max_batch=args.max_batch, max_queue=args.max_queue),
        history_turns=args.history_turns,
    )
    server = NpcServer(engine, personas, store, config)
    try:
        endpoint = server.bind(args.bind)
        signal.signal(signal.SIGINT, lambda *_: server.stop())
        signal.signal(signal.SIGTERM, lambda *_: server.stop())
        log.info(
            "serving model %s (%s) with %d personas on %s; sessions in %s",
            bundle.name,
            bundle.kind,
            len(personas),
            endpoint,
            data_dir,
        )
        if args.ready_file:
            Path(args.ready_file).write_text(endpoint + "\n", encoding="utf-8")
        server.serve_forever()
    finally:
        server.close()
        store.close()
        log.info("server stopped")
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    from .sampling import DEFAULT_NO_REPEAT_NGRAM  # numpy only: --help stays fast
    from .facts import DEFAULT_FACT_BIAS
    from .grounding import DEFAULT_SCENE_BIAS
    from .ort_backend import KV_CACHES
    from .voice import DEFAULT_CATCHPHRASE_RATE, DEFAULT_VOICE_BIAS
    p = sub.add_parser("serve", help="serve NPC dialogue over ZeroMQ", description="Serve protocol v1 over ZeroMQ.")
    p.add_argument("--bind", default="tcp://127.0.0.1:5555", help="ZeroMQ endpoint (default: %(default)s)")
    p.add_argument("--model", help="model bundle directory (default: the bundled default model)")
    p.add_argument("--personas", help="persona pack folder of TOML cards (default: the bundled village pack)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="execution provider")
    p.add_argument("--data", help=f"folder for sessions and caches (default: {default_data_dir()})")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its choice)")
    p.add_argument(
        "--kv-cache", choices=KV_CACHES, default="auto",
        help="where the running batch's KV cache lives: device memory bound with IOBinding, or host memory; "
             "auto: the GPU's memory with CUDA, host memory on the CPU (default: %(default)s)",
    )
    p.add_argument("--max-batch", type=int, default=64, help="most generations advanced per step")
    p.add_argument("--max-queue", type=int, default=256, help="queued says beyond which 'overloaded' is answered")
    p.add_argument("--history-turns", type=int, default=8, help="exchanges of history kept per session")
    p.add_argument("--cache-optimized", action="store_true", help="cache ONNX Runtime's optimised graphs on disk")
    p.add_argument("--ready-file", help="write the bound endpoint to this file once serving (for scripts)")
    p.add_argument(
        "--no-repeat-ngram", type=int, default=DEFAULT_NO_REPEAT_NGRAM, metavar="N",
        help="a reply never says the same N tokens twice; 0 turns it off (default: %(default)s)",
    )
    p.add_argument(
        "--voice-bias", type=float, default=DEFAULT_VOICE_BIAS, metavar="NATS",
        help="nudge replies towards the card's form of address (its speaking style's 'calls people \'...\''); 0 "
        "turns it off (default: %(default)s)",
    )
    p.add_argument(
        "--catchphrase-rate", type=float, default=DEFAULT_CATCHPHRASE_RATE, metavar="SHARE",
        help="share of replies that end with the card's catchphrase (its speaking style's 'often says \"...\"'), "
        "drawn per request; 0 turns it off (default: %(default)s)",
    )
    p.add_argument(
        "--fact-bias", type=float, default=DEFAULT_FACT_BIAS, metavar="NATS",
        help="where a reply is about to say a number or a compass direction, nudge it towards the card's price of "
        "the ware or direction of the place it talks about; 0 turns it off (default: %(default)s)",
    )
    p.add_argument(
        "--scene-bias", type=float, default=DEFAULT_SCENE_BIAS, metavar="NATS",
        help="where a reply is about to name a weather, creature, held item or time of day other than the say's "
        "context gives, nudge it towards the context's (bundles that list their scene words); 0 turns it off "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--no-spelling", action="store_true",
        help="turn off the bundle's spelling constraint (replies may then spell words the model never learned)",
    )
    p.add_argument(
        "--ignore-eos", action="store_true", help="always generate max_tokens (fixed-length replies for benchmarks)"
    )
    p.set_defaults(func=_cmd_serve)


# ------------------------------------------------------------------------------------------------ say


def _parse_context(pairs: Sequence[str]) -> dict[str, str]:
    context = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise NpcRuntimeError(f"--context takes key=value, got {pair!r}")
        context[key] = value
    return context


def _image_arg(path: str) -> dict:
    from PIL import Image

    data = Path(path).read_bytes()
    with Image.open(path) as im:
        fmt = {"PNG": "png", "JPEG": "jpeg"}.get(im.format or "")
        if fmt is None:
            raise NpcRuntimeError(f"{path}: only PNG and JPEG images can be sent, got {im.format}")
        return {"format": fmt, "data": data, "width": im.width, "height": im.height}


def _cmd_say(args: argparse.Namespace) -> int:
    from .client import NpcClient

    context = _parse_context(args.context or [])
    image = _image_arg(args.image) if args.image else None
    options = {"max_tokens": args.max_tokens, "temperature": args.temperature, "seed": args.seed}
    with NpcClient(args.endpoint, timeout_ms=args.timeout_ms) as client:
        reply: dict = {}
        for message in client.stream(
            args.persona, args.session, args.text, image=image, context=context, stream=not args.no_stream, **options
        ):
            if message["type"] == "chunk" and not args.json:
                print(message["text"], end="", flush=True)
            reply = message
    if args.json:
        print(json.dumps(reply, indent=2, default=lambda b: f"<{len(b)} bytes>"))
        return 0
    if args.no_stream:
        print(reply["text"], end="")
    emotion = reply["emotion"]
    timing = reply["timing_ms"]
    print(
        f"\n[{emotion['label']} {emotion['intensity']:.2f}] "
        f"first token {timing['first_token']:.1f} ms, total {timing['total']:.1f} ms"
    )
    return 0


def _add_say(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("say", help="say a line to an NPC on a running server", description="Talk to one NPC.")
    p.add_argument("text", help="what the player says")
    p.add_argument("--persona", required=True, help="persona id, e.g. blacksmith")
    p.add_argument("--session", default="cli", help="conversation id (default: %(default)s)")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="server endpoint (default: %(default)s)")
    p.add_argument("--image", help="PNG or JPEG of what the NPC sees")
    p.add_argument("--context", nargs="*", metavar="KEY=VALUE", help="scene facts, e.g. time_of_day=night")
    p.add_argument("--max-tokens", type=int, help="most tokens to generate")
    p.add_argument("--temperature", type=float, help="0 for greedy")
    p.add_argument("--seed", type=int, help="sampling seed")
    p.add_argument("--no-stream", action="store_true", help="wait for the whole reply")
    p.add_argument("--timeout-ms", type=int, default=30_000, help="give up after this long (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the reply message as JSON")
    p.set_defaults(func=_cmd_say)


# ------------------------------------------------------------------------------------------------ persona


def _cmd_persona_import(args: argparse.Namespace) -> int:
    from .personas import default_pack_dir, import_sillytavern, load_persona

    out = import_sillytavern(args.card, args.out or default_pack_dir(), persona_id=args.id)
    card = load_persona(out)
    print(f"wrote {out} (persona '{card.id}': {card.name}, {card.role})")
    return 0


def _cmd_persona_list(args: argparse.Namespace) -> int:
    from .personas import PersonaPack, default_pack_dir

    pack = PersonaPack.load(args.personas or default_pack_dir())
    for card in pack:
        print(f"{card.id:12} {card.name:24} {card.role}")
    return 0


def _add_persona(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("persona", help="persona cards: import, list", description="Manage persona cards.")
    psub = p.add_subparsers(dest="persona_command", required=True)
    imp = psub.add_parser(
        "import", help="convert a SillyTavern character card (V2 JSON) to a persona TOML file",
        description="Convert a SillyTavern character card (V1 or V2 JSON) to a persona TOML card.",
    )
    imp.add_argument("card", help="the character card JSON file")
    imp.add_argument("--out", help="pack folder to write into (default: the bundled pack)")
    imp.add_argument("--id", help="persona id (default: from the name)")
    imp.set_defaults(func=_cmd_persona_import)
    lst = psub.add_parser("list", help="list the personas of a pack", description="List a pack's personas.")
    lst.add_argument("--personas", help="pack folder (default: the bundled pack)")
    lst.set_defaults(func=_cmd_persona_list)


# ------------------------------------------------------------------------------------------------ main


def _add_export_commands(sub: argparse._SubParsersAction) -> None:
    for name, (module_name, help_text) in EXPORT_COMMANDS.items():
        try:
            spec = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text, add_help=False)
        p.add_argument("argv", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(func=_run_export_command, export_module=module_name)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    help_text = "benchmark the real server at 1..64 concurrent NPCs beside PyTorch eager; writes JSON and Markdown"
    p = sub.add_parser("bench", help=help_text, description=help_text, add_help=False)
    p.add_argument("argv", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=lambda args: importlib.import_module("npc_runtime.bench").main(args.argv))


def _add_tree(sub: argparse._SubParsersAction) -> None:
    help_text = "generate dialogue trees offline and export Ink, Yarn Spinner, Twee, Godot Dialogue Manager or JSON"
    p = sub.add_parser("tree", help=help_text, description=help_text, add_help=False)
    p.add_argument("argv", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=lambda args: importlib.import_module("npc_runtime.trees.cli").main(args.argv))


def _run_export_command(args: argparse.Namespace) -> int:
    try:
        module = importlib.import_module(args.export_module)
    except ImportError as exc:
        raise NpcRuntimeError(
            f"'{args.command}' needs the export extra (PyTorch): pip install -e '.[export]' ({exc})"
        ) from exc
    return int(module.main(args.argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npc-runtime",
        description="On-device NPC dialogue runtime: persona-conditioned, multimodal replies with emotion.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_say(sub)
    _add_persona(sub)
    _add_bench(sub)
    _add_tree(sub)
    _add_export_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if hasattr(args, "argv"):  # delegated commands parse their own options, --help included
        args.argv = extra + list(args.argv)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _setup_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except RequestFailed as exc:
        print(f"npc-runtime: the server answered {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except NpcRuntimeError as exc:
        print(f"npc-runtime: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
