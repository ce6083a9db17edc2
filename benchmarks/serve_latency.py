"""The API's latency and throughput, end to end over HTTP: p50/p99 per request and requests/s at concurrency 1 and 8,
with the micro-batcher off, on, and on with a window, side by side.

python benchmarks/serve_latency.py                                  # the registry's champions (run in the project)
python benchmarks/serve_latency.py --models models --threads 2      # a folder of checkpoints
python benchmarks/serve_latency.py --models exports -- --runtime onnx   # flags after -- go to `carvision serve`
python benchmarks/serve_latency.py --photos 'data/raw/sample/images/*/*.jpg'   # these photos, not generated ones
python benchmarks/serve_latency.py --smoke                          # tiny random models, in-process server (CI, s)

Each configuration is its own `carvision serve` process (--port 0, 127.0.0.1), started with the models, warmed up
(--warmup requests, off the clock), then driven by this process's asyncio client (httpx, keep-alive connections):
for each concurrency C, --requests requests of one photo each, C in flight at a time. Latency is the client's
time from sending a request to having its JSON (HTTP, multipart parsing, queueing, decode, the three models,
JSON); throughput is requests / wall time of that run. The server's own counters (/healthz) give the photos per
model call, and /proc the server's CPU time per request (all its threads), beside this client's: CPU time is what
the work costs whatever else runs on the machine, where wall times stretch with every other process. The load
average before and after is recorded. Configurations:
- off: `--max-batch 1`, one photo per model call;
- on: the default, requests queued while a call runs share the next one (no waiting);
- on+window: `--batch-window-ms` (5): a call waits that long for more requests after its first.

Photos: --photos GLOB, else --n photo-like JPEGs of about --megapixels (benchmarks/clean.py's generator: a drawn
car on a textured background with sensor-like noise, quality 90), sent in turn. The server and this client share
the machine: on 2 cores the client's own CPU time (~1-2 ms a request) is part of what is measured, as it would be
for a client on the same host. --threads is the server's inference threads (`carvision serve --threads`).

--smoke: three random-weight tiny checkpoints written to a temp folder, 16 requests per level, and the server in a
thread of this process (no process start, so CI takes seconds): it checks that the benchmark runs, its figures
mean little.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CONFIGS = {  # name -> `carvision serve` flags
    "off": ["--max-batch", "1"],
    "on": [],
    "on+window": ["--batch-window-ms", "{window}"],
}


def generated_photos(n: int, megapixels: float, seed: int) -> list[bytes]:
    sys.path.insert(0, str(BENCH))
    from clean import make_photos  # benchmarks/clean.py: the photo-like JPEG generator

    with tempfile.TemporaryDirectory() as tmp:
        return [p.read_bytes() for p in make_photos(Path(tmp), n, megapixels, seed, noise=3.0)]


def random_models(folder: Path, img_size: int = 32) -> Path:
    """Tiny random-weight checkpoints of the three tasks, as training writes them (hyper_parameters +
    state_dict), so that --smoke needs no trained model."""
    import torch
    from timm.data import resolve_model_data_config

    from carvision.training.module import Classifier

    tasks = {
        "car_filter": (["car", "no_car"], "car"),
        "make_model": ([f"Make{i} Model{i}" for i in range(8)], None),
        "viewpoint": (["back", "back-side", "front", "front-side", "side"], None),
    }
    for seed, (task, (names, positive)) in enumerate(tasks.items()):
        torch.manual_seed(seed)
        model = Classifier(
            backbone="mobilenetv3_small_050", class_names=names, task=task, img_size=img_size, positive_class=positive
        )
        data = resolve_model_data_config(model.model)
        model.hparams.mean, model.hparams.std = tuple(data["mean"]), tuple(data["std"])
        (folder / task).mkdir(parents=True)
        torch.save(
            {"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict()}, folder / task / "model.ckpt"
        )
    return folder


class Server:
    """`carvision serve` in a subprocess on a free port, or (in_process) create_app in a thread."""

    def __init__(self, flags: list[str], in_process: bool, threads: int, models: str | None) -> None:
        self.flags, self.in_process, self.threads, self.models = flags, in_process, threads, models

    def cpu_s(self) -> float | None:
        """The server process's CPU seconds so far (user + system, all its threads); None in-process."""
        if self.in_process:
            return None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (clock ticks)

    def __enter__(self) -> str:
        if self.in_process:
            return self._start_thread()
        args = [sys.executable, "-m", "carvision.cli", "serve", "--port", "0", "--threads", str(self.threads)]
        args += (["--models", self.models] if self.models else []) + self.flags
        self.log = tempfile.NamedTemporaryFile(prefix="serve-bench-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            args, stdout=self.log, stderr=self.log, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            text = Path(self.log.name).read_text(errors="replace")
            url = next((w.rstrip("/") for w in text.split() if w.startswith("http://127.0.0.1:")), None)
            if url and self._healthy(url):
                return url
            if self.proc.poll() is not None:
                raise SystemExit(f"carvision serve exited:\n{text[-3000:]}")
            time.sleep(0.3)
        raise SystemExit("carvision serve did not become healthy in 300 s")

    def _start_thread(self) -> str:
        import threading

        import uvicorn

        from carvision import serve
        from carvision.serve.app import create_app

        s, args = serve.parse_args(["--threads", str(self.threads), "--models", self.models, *self.flags])
        serve.set_threads(s.threads)
        app = create_app(serve.load_recogniser(s, args), max_batch=s.max_batch, batch_window_ms=s.batch_window_ms)
        sock = serve.bind("127.0.0.1", 0)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        while not self._healthy(url):
            time.sleep(0.1)
        return url

    @staticmethod
    def _healthy(url: str) -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def __exit__(self, *exc) -> None:
        if self.in_process:
            self.server.should_exit = True
            self.thread.join(10)
            return
        self.proc.terminate()
        self.proc.wait(30)
        os.unlink(self.log.name)


async def drive(url: str, photos: list[bytes], requests: int, concurrency: int) -> dict:
    """`requests` one-photo requests, `concurrency` in flight; latencies (ms), wall time, statuses."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            for i in next_index:
                files = [("files", (f"{i}.jpg", photos[i % len(photos)], "image/jpeg"))]
                t = time.perf_counter()
                r = await client.post("/v1/predict", files=files)
                r.json()
                latencies.append(1000 * (time.perf_counter() - t))
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {"latencies": latencies, "wall_s": wall, "statuses": statuses}


def measure(url: str, server: Server, photos: list[bytes], args) -> list[dict]:
    asyncio.run(drive(url, photos, args.warmup, max(args.concurrency)))  # off the clock
    rows = []
    for c in args.concurrency:
        before = httpx.get(f"{url}/healthz").json()["batching"]
        server_cpu, client_cpu = server.cpu_s(), time.process_time()
        r = asyncio.run(drive(url, photos, args.requests, c))
        client_cpu = time.process_time() - client_cpu
        server_cpu = None if server_cpu is None else server.cpu_s() - server_cpu
        after = httpx.get(f"{url}/healthz").json()["batching"]
        calls = after["batches"] - before["batches"]
        lat = np.array(r["latencies"])
        rows.append(
            {
                "concurrency": c,
                "requests": args.requests,
                "p50_ms": round(float(np.percentile(lat, 50)), 2),
                "p99_ms": round(float(np.percentile(lat, 99)), 2),
                "mean_ms": round(float(lat.mean()), 2),
                "throughput_rps": round(args.requests / r["wall_s"], 1),
                "photos_per_call": round((after["photos"] - before["photos"]) / calls, 2) if calls else 0.0,
                # CPU time per request: what the work costs whatever else runs on the machine (wall times are
                # stretched by other processes; these are not, much).
                "server_cpu_ms": None if server_cpu is None else round(1000 * server_cpu / args.requests, 2),
                "client_cpu_ms": round(1000 * client_cpu / args.requests, 2),
                "statuses": r["statuses"],
            }
        )
    return rows


def table(results: dict) -> str:
    lines = [
        "| batching | concurrency | p50 ms | p99 ms | mean ms | requests/s | photos per model call "
        "| server CPU ms / request | client CPU ms / request | statuses |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for config, rows in results["configs"].items():
        for r in rows:
            lines.append(
                f"| {config} | {r['concurrency']} | {r['p50_ms']} | {r['p99_ms']} | {r['mean_ms']} | "
                f"{r['throughput_rps']} | {r['photos_per_call']} | {r['server_cpu_ms']} | {r['client_cpu_ms']} | "
                f"{r['statuses']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    serve_flags = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--models", help="folder of <task>/model.ckpt (or exports with -- --runtime onnx); default: registry"
    )
    ap.add_argument("--photos", help="glob of photos to send; default: generated ones")
    ap.add_argument("--n", type=int, default=24, help="generated photos")
    ap.add_argument("--megapixels", type=float, default=1.0, help="size of the generated photos")
    ap.add_argument("--requests", type=int, default=400, help="timed requests per concurrency level")
    ap.add_argument("--warmup", type=int, default=40, help="requests before timing, per configuration")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=1, help="the server's inference threads")
    ap.add_argument("--window-ms", type=float, default=5.0, help="the on+window configuration's batch window")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--smoke", action="store_true", help="tiny random models, in-process server, 16 requests")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        if args.smoke:
            args.models = str(random_models(Path(tmp) / "models"))
            args.requests, args.warmup, args.n, args.megapixels = 16, 4, 4, 0.1
        if args.photos:
            photos = [Path(p).read_bytes() for p in sorted(glob.glob(args.photos))]
            if not photos:
                raise SystemExit(f"no photos match {args.photos}")
        else:
            photos = generated_photos(args.n, args.megapixels, seed=0)
        results = {
            "models": args.models or "registry (@champion)",
            "serve_flags": serve_flags,
            "threads": args.threads,
            "photos": args.photos or f"{args.n} generated, ~{args.megapixels} MP",
            "mean_photo_kb": round(sum(map(len, photos)) / len(photos) / 1000, 1),
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "load_average_before": round(os.getloadavg()[0], 2),  # other work on the machine: the noise
            "configs": {},
        }
        for name in args.configs:
            flags = [f.format(window=args.window_ms) for f in CONFIGS[name]] + serve_flags
            server = Server(flags, args.smoke, args.threads, args.models)
            with server as url:
                results["configs"][name] = measure(url, server, photos, args)
    results["load_average_after"] = round(os.getloadavg()[0], 2)
    print(table(results))
    print(f"load average (1 min) before / after: {results['load_average_before']} / {results['load_average_after']}")
    print(json.dumps(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
