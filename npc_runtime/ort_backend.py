"""ONNX Runtime sessions: provider choice, deliberate session options, and error translation.

Every ONNX Runtime call of the project goes through :class:`OrtGraph`, so its errors become
:class:`~npc_runtime.errors.InferenceError` in one place and the provider in use is known and logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, InferenceError

__all__ = ["RuntimeOptions", "OrtGraph", "resolve_providers", "DEVICES", "KV_CACHES"]

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
#: Where the running batch's KV cache lives: ``auto`` is the device's memory on CUDA and host memory on the CPU.
KV_CACHES = ("auto", "host", "device")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def _ort():
    # Imported lazily: onnxruntime-gpu prints CUDA probing noise at import on machines without a GPU, and the
    # severity must be set before the first session is made.
    import onnxruntime as ort

    return ort


@dataclass(frozen=True)
class RuntimeOptions:
    """How ONNX Runtime sessions are made; the defaults suit a game sharing the machine."""

    device: str = "auto"
    intra_op_threads: int = 0  # 0: ONNX Runtime's choice (one per physical core)
    allow_spinning: bool = False  # spinning threads burn the cores a game needs
    optimized_cache_dir: str | None = None  # where optimised graphs are cached between runs
    log_severity: int = 3  # ONNX Runtime's own log: 3 = errors only
    kv_cache: str = "auto"  # one of KV_CACHES (npc_runtime.device_kv)

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.kv_cache not in KV_CACHES:
            raise ValueError(f"kv_cache must be one of {KV_CACHES}, got {self.kv_cache!r}")
        if self.intra_op_threads < 0:
            raise ValueError("intra_op_threads must be >= 0")


def resolve_providers(device: str) -> tuple[list[str], str]:
    """Providers to ask ONNX Runtime for, and a reason string when CUDA is not among them."""
    ort = _ort()
    available = ort.get_available_providers()
    if device == "cpu":
        return [CPU], "--device cpu"
    if CUDA not in available:
        reason = f"this onnxruntime build offers only {available}"
    else:
        reason = _cuda_unusable_reason(ort)
    if reason:
        if device == "cuda":
            raise ConfigError(f"--device cuda, but CUDA is not usable: {reason}")
        return [CPU], reason
    return [CUDA, CPU], ""


def _cuda_unusable_reason(ort: Any) -> str:
    """Why the CUDA provider cannot run here, or "" when it can; probed without ONNX Runtime's log noise."""
    import ctypes

    lib = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    if lib.exists():
        try:
            ctypes.CDLL(str(lib))
        except OSError as exc:
            return f"CUDA libraries not loadable ({exc})"
    try:
        libcudart = None
        for name in ("libcudart.so.13", "libcudart.so.12", "libcudart.so"):
            try:
                libcudart = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if libcudart is not None:
            count = ctypes.c_int(0)
            if libcudart.cudaGetDeviceCount(ctypes.byref(count)) != 0 or count.value == 0:
                return "no CUDA device found"
    except (OSError, AttributeError):
        pass
    return ""


class OrtGraph:
    """One ONNX graph in an InferenceSession with declared input and output names."""

    def __init__(
        self,
        path: Path,
        inputs: Sequence[str],
        outputs: Sequence[str],
        options: RuntimeOptions,
        providers: Sequence[str],
    ) -> None:
        ort = _ort()
        ort.set_default_logger_severity(options.log_severity)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = options.log_severity
        so.intra_op_num_threads = options.intra_op_threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.allow_spinning else "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "1" if options.allow_spinning else "0")
        if options.optimized_cache_dir:
            cache = Path(options.optimized_cache_dir)
            cache.mkdir(parents=True, exist_ok=True)
            so.optimized_model_filepath = str(cache / f"{Path(path).stem}.{providers[0]}.opt.onnx")
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=so, providers=list(providers))
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise InferenceError(f"cannot load ONNX graph {path}: {exc}") from exc
        declared_in = {i.name for i in self.session.get_inputs()}
        declared_out = {o.name for o in self.session.get_outputs()}
        missing = [n for n in inputs if n not in declared_in] + [n for n in outputs if n not in declared_out]
        if missing:
            raise InferenceError(f"ONNX graph {path} lacks the manifest's tensors {missing}")
        self.input_names = tuple(inputs)
        self.output_names = tuple(outputs)
        self.provider = self.session.get_providers()[0]

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        names = list(outputs or self.output_names)
        try:
            values = self.session.run(names, dict(feeds))
        except Exception as exc:
            raise InferenceError(f"{self.path.name} failed: {exc}") from exc
        return dict(zip(names, values))

    def run_bound(self, binding: Any) -> None:
        """Run with an IOBinding whose inputs and outputs the caller has bound (device-resident tensors)."""
        try:
            self.session.run_with_iobinding(binding)
        except Exception as exc:
            raise InferenceError(f"{self.path.name} failed: {exc}") from exc
