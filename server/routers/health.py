"""``GET|POST /v1/health`` (Tabby's fields plus ours) and ``GET /v1beta/server_setting``."""

from __future__ import annotations

import re
import time

from fastapi import APIRouter, Depends

from server.runtime import Runtime, runtime
from server.schemas import HealthOut, ServerSettingOut

router = APIRouter(tags=["health"])


@router.get("/v1/health", response_model=HealthOut, operation_id="health")
@router.post("/v1/health", response_model=HealthOut, operation_id="health_post")  # Tabby's agent falls back to POST
async def health(rt: Runtime = Depends(runtime)) -> HealthOut:
    """Liveness and what is served; never waits on the model (no token needed)."""
    return HealthOut(
        **rt.info,
        adapters=rt.adapter_names(),
        workspaces=rt.jobs.names(),
        uptime_s=round(time.monotonic() - rt.started, 3),
    )


@router.get("/v1beta/server_setting", response_model=ServerSettingOut)
async def server_setting() -> ServerSettingOut:
    """Tabby's client settings; telemetry stays local here, so nothing to disable."""
    return ServerSettingOut()


#: Tabby clients read ``version.git_describe`` to detect features (>= 0.9 has server_setting):
#: we report the Tabby API level we implement, then our own version.
TABBY_API_LEVEL = "0.11.0"


#: An absolute server path inside a text (not the path part of a URL): kept as its last part.
_SERVER_PATH = re.compile(r"(?<![\w:/.~-])(?:~|/)(?:[^\s/'\"]*/)*([^\s/'\"]+)")


def without_paths(text: str) -> str:
    """``text`` with every absolute server path cut to its last part (health is public)."""
    return _SERVER_PATH.sub(r"\1", text)


def static_info(engine) -> dict:
    """Health fields that never change while serving, read once at start; no server paths
    (``/v1/health`` answers without a token)."""
    import os
    import platform

    from repocomplete import __version__

    info = engine.info()
    backend = {k: without_paths(v) if isinstance(v, str) else v for k, v in (info.get("backend") or {}).items()
               if k not in ("path", "url")}
    device = str(backend.get("device", "cpu"))
    return {
        "model": without_paths(str(info.get("model") or "unknown")),
        "model_label": without_paths(str(info.get("model_label") or info.get("model") or "unknown")),
        "device": device,
        "arch": platform.machine() or "unknown",
        "cpu_info": _cpu_name(),
        "cpu_count": os.cpu_count() or 1,
        "cuda_devices": [str(d) for d in backend.get("cuda_devices", [device] if device.startswith("cuda") else [])],
        "version": {"build_date": "", "git_sha": "", "git_describe": f"v{TABBY_API_LEVEL}-repocomplete-{__version__}"},
        "backend": {k: v for k, v in backend.items() if isinstance(v, (str, int, float, bool)) or v is None},
        "threads": backend.get("threads"),
        "threads_reason": backend.get("threads_reason"),
    }


def _cpu_name() -> str:
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as lines:
            for line in lines:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
