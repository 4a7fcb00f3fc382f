"""Load test of ``mtst serve`` on loopback: micro-batching against a batch of one request, overload, soak.

What it measures
    Two servers of the same model (``mtst serve --model default``: all-MiniLM-L6-v2 with the shipped topic,
    sentiment and entity heads), each a subprocess on 127.0.0.1 with a port the OS picks and one torch thread:
    one with micro-batching (the defaults), one with ``--no-batching`` (each request is one model call). Closed
    loop: ``--clients`` concurrent clients (asyncio + httpx) send ``POST /predict`` requests of 1 to 8 real
    sentences (SST-2 dev, seeded), ``--requests`` per round, rounds alternating A B B A so that drifting load
    on a shared machine hits both alike.

    * Throughput: requests/s and sentences/s over each mode's rounds; the ratio batching / no batching.
    * Latency: p50 and p99 of each request (client side, send to full response).
    * Correctness: every response is checked against a reference ``MultiTaskModel.predict`` run in this
      process, sentence by sentence: each label equal, each score within 1e-3, each entity's label and
      character span equal. Lost answers (errors, timeouts, wrong counts) and wrong answers are counted.
    * Overload: a third server with ``--max-queue 16`` and 4 x ``--clients`` clients that do not back off:
      429s must appear (with Retry-After), every 200 is still right, and ``GET /health``, polled every 100 ms
      meanwhile, stays 200.
    * Soak: the batching server under ``--clients`` clients for ``--soak-seconds``; its RSS (from /proc) is
      sampled every 5 s. "Flat" means the last sample is within 10% of the one taken after the first 20% of
      the soak (warm-up: allocator pools fill), and the peak is reported too.

Every loop is bounded by a request count and a time limit, and talks to 127.0.0.1 only.

Run it from the project root::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/serve_load.py
    HF_HUB_OFFLINE=1 .venv/bin/python bench/serve_load.py --requests 200 --soak-seconds 60 --json-out /tmp/s.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SCORE_TOL = 1e-3


def log(msg: str) -> None:
    print(msg, flush=True)


def machine() -> dict[str, Any]:
    import torch

    model = next((ln.split(":", 1)[1].strip() for ln in _lscpu() if ln.startswith("Model name")), "?")
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "lscpu_model": model,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def _lscpu() -> list[str]:
    try:
        return subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return []


def read_sentences(datasets: Path) -> list[str]:
    with open(datasets / "sst2" / "dev.tsv", encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f, delimiter="\t")]


def plan(sentences: list[str], n: int, seed: int, max_per_request: int = 8) -> list[list[str]]:
    rng = random.Random(seed)
    return [rng.sample(sentences, rng.randint(1, max_per_request)) for _ in range(n)]


# ---------------------------------------------------------------------- servers
class Server:
    """``mtst serve`` in a subprocess on 127.0.0.1, port chosen by the OS."""

    def __init__(self, name: str, model: str, *flags: str) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        # uvicorn logs "running on http://127.0.0.1:PORT" at info level: the port is read from that line
        cmd = [sys.executable, "-m", "mtst.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--log-level", "info"]
        self.name = name
        self.log_path = Path(f"/tmp/serve_load_{name}_{os.getpid()}.log")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*cmd, "--model", model, *flags], stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        self.url = ""

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            if not self.url:
                m = re.search(r"running on (http://127\.0\.0\.1:\d+)", self.log_path.read_text())
                self.url = m.group(1) if m else ""
            if self.url:
                try:
                    if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} not ready after {timeout}s")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: graceful shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ---------------------------------------------------------------------- checking
def check_prediction(got: dict[str, Any], want: dict[str, Any]) -> str:
    """'' if ``got`` matches the reference prediction of the same sentence, else what differs."""
    if set(got) != set(want):
        return f"tasks {sorted(got)} != {sorted(want)}"
    for task, w in want.items():
        g = got[task]
        if isinstance(w, list):
            spans_g = [(e["label"], e["start"], e["end"]) for e in g]
            spans_w = [(e["label"], e["start"], e["end"]) for e in w]
            if spans_g != spans_w:
                return f"{task}: {spans_g} != {spans_w}"
        elif w.get("label") != g.get("label") or abs(w["score"] - g["score"]) > SCORE_TOL:
            return f"{task}: {g} != {w}"
    return ""


# ---------------------------------------------------------------------- load
async def run_load(
    url: str,
    requests: list[list[str]],
    reference: dict[str, dict],
    clients: int,
    time_limit: float,
) -> dict[str, Any]:
    """Closed loop: ``clients`` workers take the next request until all are sent or time runs out.

    The answers are kept as bytes and checked after the clock stops, so that checking costs the load nothing.
    """
    queue = list(range(len(requests)))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lost = retry_after_missing = 0
    examples: list[str] = []
    answers: list[tuple[list[str], bytes]] = []
    deadline = time.monotonic() + time_limit
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"content-type": "application/json"}

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def worker() -> None:
            nonlocal lost, retry_after_missing
            while queue and time.monotonic() < deadline:
                texts = requests[queue.pop()]
                body = json.dumps({"inputs": texts}).encode()
                start = time.perf_counter()
                try:
                    res = await client.post("/predict", content=body, headers=headers)
                except httpx.HTTPError as e:
                    lost += 1
                    examples.append(f"{type(e).__name__}: {e}")
                    continue
                statuses[res.status_code] = statuses.get(res.status_code, 0) + 1
                if res.status_code == 429:
                    retry_after_missing += "retry-after" not in res.headers
                    continue
                if res.status_code != 200:
                    lost += 1
                    examples.append(res.text[:200])
                    continue
                latencies.append(time.perf_counter() - start)
                answers.append((texts, res.content))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - start
    wrong = 0
    for texts, content in answers:  # each answer against the reference of its own request's sentences
        preds = json.loads(content)["predictions"]
        if len(preds) != len(texts):
            lost += 1
            continue
        for text, pred in zip(texts, preds, strict=True):
            diff = check_prediction(pred, reference[text])
            if diff:
                wrong += 1
                if len(examples) < 5:
                    examples.append(f"{text[:60]!r}: {diff}")
    done = len(latencies)
    lat = sorted(latencies)
    return {
        "requests_sent": len(requests) - len(queue),
        "ok": done,
        "statuses": statuses,
        "lost": lost,
        "wrong_sentences": wrong,
        "retry_after_missing": retry_after_missing,
        "wall_s": wall,
        "requests_per_s": done / wall if wall else 0.0,
        "p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None,
        "examples": examples[:5],
    }


def poll_health(url: str, stop: threading.Event, out: dict[str, Any]) -> None:
    """GET /health every 100 ms from its own thread (not the load's event loop) until ``stop``."""
    codes: dict[int, int] = {}
    times: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            t = time.perf_counter()
            try:
                code = client.get("/health").status_code
            except httpx.HTTPError:
                code = -1
            times.append(time.perf_counter() - t)
            codes[code] = codes.get(code, 0) + 1
            stop.wait(0.1)
    times.sort()
    out.update(
        health_statuses=codes,
        health_p50_ms=1000 * times[len(times) // 2] if times else None,
        health_worst_ms=1000 * times[-1] if times else None,
    )


def with_health(url: str, load) -> dict[str, Any]:
    stop, health = threading.Event(), {}
    poller = threading.Thread(target=poll_health, args=(url, stop, health))
    poller.start()
    try:
        result = asyncio.run(load)
    finally:
        stop.set()
        poller.join()
    return {**result, **health}


def batch_stats(url: str) -> tuple[float, float, float]:
    """(batches, requests, texts) run so far, from the server's Prometheus histograms."""
    text = httpx.get(f"{url}/metrics", timeout=30).text

    def value(name: str) -> float:
        m = re.search(rf"^{name} ([0-9.e+]+)$", text, flags=re.M)
        return float(m.group(1)) if m else 0.0

    return value("mtst_batch_requests_count"), value("mtst_batch_requests_sum"), value("mtst_batch_size_sum")


def sentences_in(requests: list[list[str]]) -> int:
    return sum(len(r) for r in requests)


# ---------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=400, help="requests per throughput round (4 rounds)")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--model", default="default", help="what `mtst serve --model` gets (default: the shipped heads)")
    p.add_argument("--overload-requests", type=int, default=1500)
    p.add_argument("--soak-seconds", type=float, default=300)
    p.add_argument("--round-time-limit", type=float, default=600, help="seconds; a round stops early past this")
    p.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", type=Path)
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    info = machine()
    log(f"cpu capability: {info['cpu_capability']}; lscpu model: {info['lscpu_model']}; {info['cores']} cores")
    log(f"torch {info['torch']}, python {info['python']}, load average {info['load_average']}")
    sentences = read_sentences(args.datasets)
    rounds = [plan(sentences, args.requests, args.seed + i) for i in range(4)]

    servers = {
        "batching": Server("batching", args.model),
        "no_batching": Server("no_batching", args.model, "--no-batching"),
    }
    try:
        from mtst.serve.backend import load_backend

        t = time.perf_counter()
        model = load_backend(args.model, device="cpu").model  # the same loading as the servers'
        wanted = sorted(set(sentences))  # every request is drawn from these
        reference = dict(zip(wanted, model.predict(wanted, show_progress_bar=False), strict=True))
        log(f"reference predictions for {len(wanted)} sentences in {time.perf_counter() - t:.0f}s")
        del model
        for s in servers.values():
            s.wait_ready()
        for s in servers.values():  # warm-up, untimed
            asyncio.run(run_load(s.url, plan(sentences, 32, 99), reference, 8, 120))

        results: dict[str, list[dict]] = {"batching": [], "no_batching": []}
        for i, mode in enumerate(["batching", "no_batching", "no_batching", "batching"]):
            before = batch_stats(servers[mode].url)
            r = asyncio.run(run_load(servers[mode].url, rounds[i], reference, args.clients, args.round_time_limit))
            after = batch_stats(servers[mode].url)
            batches, reqs, texts = (a - b for a, b in zip(after, before, strict=True))
            r.update(
                batches=batches, requests_per_batch=reqs / max(batches, 1), texts_per_batch=texts / max(batches, 1)
            )
            r["sentences"] = sentences_in(rounds[i][: r["requests_sent"]])
            results[mode].append(r)
            log(
                f"round {i + 1} {mode:12s}: {r['requests_per_s']:.2f} req/s, p50 {r['p50_ms']:.0f} ms, "
                f"p99 {r['p99_ms']:.0f} ms, {r['requests_per_batch']:.1f} requests ({r['texts_per_batch']:.0f} "
                f"sentences) per batch, ok {r['ok']}, lost {r['lost']}, wrong {r['wrong_sentences']}"
            )
        summary = {}
        for mode, rs in results.items():
            wall = sum(r["wall_s"] for r in rs)
            lat_p50 = statistics.median(r["p50_ms"] for r in rs)
            summary[mode] = {
                "requests_per_s": sum(r["ok"] for r in rs) / wall,
                "sentences_per_s": sum(r["sentences"] for r in rs) / wall,
                "p50_ms": lat_p50,
                "p99_ms": max(r["p99_ms"] for r in rs),
                "lost": sum(r["lost"] for r in rs),
                "wrong_sentences": sum(r["wrong_sentences"] for r in rs),
                "ok": sum(r["ok"] for r in rs),
            }
        ratio = summary["batching"]["requests_per_s"] / summary["no_batching"]["requests_per_s"]
        log(f"throughput ratio batching / no batching: {ratio:.2f}x (target >= 4x)")
        servers["no_batching"].stop()

        over = Server("overload", args.model, "--max-queue", "16")
        try:
            over.wait_ready()
            load = run_load(over.url, plan(sentences, args.overload_requests, 7), reference, 4 * args.clients, 300)
            overload = with_health(over.url, load)
        finally:
            over.stop()
        log(
            f"overload ({4 * args.clients} clients, --max-queue 16): statuses {overload['statuses']}, "
            f"health {overload['health_statuses']} (p50 {overload['health_p50_ms']:.0f} ms, worst "
            f"{overload['health_worst_ms']:.0f} ms), "
            f"wrong {overload['wrong_sentences']}, 429 without Retry-After {overload['retry_after_missing']}"
        )

        soak = run_soak(servers["batching"], sentences, reference, args)
        log(
            f"soak {soak['seconds']:.0f}s: {soak['ok']} requests, RSS after warm-up {soak['rss_baseline_mb']:.0f} MB, "
            f"end {soak['rss_end_mb']:.0f} MB ({100 * soak['rss_growth']:+.1f}%), peak {soak['rss_peak_mb']:.0f} MB, "
            f"lost {soak['lost']}, wrong {soak['wrong_sentences']}"
        )
    finally:
        for s in servers.values():
            s.stop()

    out = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "rounds": results}
    out.update(summary=summary, ratio=ratio, overload=overload, soak=soak)
    if args.json_out:
        args.json_out.write_text(json.dumps(out, indent=2))
        log(f"wrote {args.json_out}")


def run_soak(server: Server, sentences: list[str], reference: dict, args) -> dict[str, Any]:
    """Load for ``--soak-seconds``, sampling the server's RSS every 5 s."""
    samples: list[tuple[float, float]] = []

    async def soak() -> dict[str, Any]:
        stop = asyncio.Event()

        async def sampler() -> None:
            t0 = time.monotonic()
            while not stop.is_set():
                samples.append((time.monotonic() - t0, server.rss_mb()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 5)

        task = asyncio.create_task(sampler())
        reqs = plan(sentences, 20_000, 11)  # bounded by time: --soak-seconds
        result = await run_load(server.url, reqs, reference, args.clients, args.soak_seconds)
        stop.set()
        await task
        return result

    result = asyncio.run(soak())
    samples.append((args.soak_seconds, server.rss_mb()))
    warm = next((rss for t, rss in samples if t >= 0.2 * args.soak_seconds), samples[0][1])
    end = samples[-1][1]
    return {
        **result,
        "seconds": result["wall_s"],
        "rss_samples_mb": samples,
        "rss_baseline_mb": warm,
        "rss_end_mb": end,
        "rss_peak_mb": max(r for _, r in samples),
        "rss_growth": (end - warm) / warm,
    }


if __name__ == "__main__":
    main()
