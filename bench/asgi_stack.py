"""Choose the server's ASGI stack by measurement: the same `Service` (same handlers, same model,
same metrics) behind (a) our raw ASGI app or (b) Starlette routing, each on uvicorn with
httptools + uvloop, and (c) the raw app on uvicorn's pure-Python h11 + asyncio.

Run: .venv/bin/python bench/asgi_stack.py [--seconds 3]   (needs `wrk`; writes nothing)
Load: wrk, 1 connection and 16 connections, 1-row v2 infer of iris LogisticRegression.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import free_port, stop, train_iris, v2_body, wait_ready, wrk

VARIANTS = {
    "raw-httptools-uvloop": ("raw", "httptools", "uvloop"),
    "starlette-httptools-uvloop": ("starlette", "httptools", "uvloop"),
    "raw-h11-asyncio": ("raw", "h11", "asyncio"),
}


def build_app(kind: str, directory: str, sha256: str):
    from modelops.server.app import App, Service, Settings, error
    from modelops.server.inputs import RequestError
    from modelops.server.model import ServedModel

    service = Service(Settings("iris", "v1"))
    service.set_model(ServedModel.from_dir(directory, sha256))
    if kind == "raw":
        return App(service)

    import time

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def infer(request: Request) -> Response:
        start = time.perf_counter()
        try:
            result = await service.infer(
                request.path_params["name"], None, await request.body(), request.headers.get("x-request-id")
            )
        except RequestError as exc:
            result = error(exc.status, exc.message, exc.field)
        headers = {"x-request-id": result.request_id} if result.request_id else None
        response = Response(result.body, result.status, headers=headers, media_type="application/json")
        service.metrics.observe_request("infer", result.status, time.perf_counter() - start)
        return response

    async def ready(request: Request) -> Response:
        result = service.server_ready()
        return Response(result.body, result.status, media_type="application/json")

    return Starlette(
        routes=[Route("/v2/models/{name}/infer", infer, methods=["POST"]), Route("/v2/health/ready", ready)]
    )


def serve(variant: str, port: int, directory: str, sha256: str) -> None:
    import sklearn
    import uvicorn

    sklearn.set_config(assume_finite=True)
    kind, http, loop = VARIANTS[variant]
    app = build_app(kind, directory, sha256)
    uvicorn.run(app, host="127.0.0.1", port=port, http=http, loop=loop, access_log=False, log_level="warning")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--serve", choices=VARIANTS)
    p.add_argument("--port", type=int)
    p.add_argument("--dir")
    p.add_argument("--sha256")
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.dir, args.sha256)
        return
    with tempfile.TemporaryDirectory() as tmp:
        directory, sha = train_iris(Path(tmp))
        body = v2_body(1)
        results = {}
        for variant in VARIANTS:
            port = free_port()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--serve",
                    variant,
                    "--port",
                    str(port),
                    "--dir",
                    str(directory),
                    "--sha256",
                    sha,
                ]
            )
            try:
                wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc)
                url = f"http://127.0.0.1:{port}/v2/models/iris/infer"
                wrk(url, body, 1, 1)  # warm-up
                results[variant] = {f"c{c}": wrk(url, body, c, args.seconds) for c in (1, 16)}
            finally:
                stop(proc)
            print(variant, json.dumps(results[variant]), flush=True)


if __name__ == "__main__":
    main()
