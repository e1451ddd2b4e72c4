"""A small steady load on every flow of the demo API: ``python -m demo.traffic``.

The launcher runs it in-process; the docker-compose stack runs it as its own
service. A few requests a second from ``--threads`` threads, until SIGINT or
SIGTERM (or ``--seconds``).

It models a healthy service's users: its deliberate errors stay well under
every alert threshold and SLO objective of demo/promkit.yaml (the margins are
in demo/README.md, "A healthy demo"). One login in ``BAD_LOGIN_EVERY`` has a
mistyped password, spaced evenly rather than at random so a short window
never sees a clump of them. The ``credential_stuffing`` fault knob adds an
attacker: ``STUFFING_PER_SECOND`` wrong-password logins a second for many user
names, which trips ``AuthFailureSpike`` and the auth SLO.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import TYPE_CHECKING

from demo import settings

if TYPE_CHECKING:
    import random
    from pathlib import Path

    import httpx

BAD_LOGIN_EVERY = 400
"""One login in 400 mistypes its password: 0.25% of logins fail. The auth SLO
(95%) tickets at 0.2333 x its 5% budget = 1.17% (4.7x margin); at the demo's
~2.9 logins a second (measured) AuthFailureSpike (> 100 failures in 15 minutes)
sees ~7 (15x margin)."""
STUFFING_PER_SECOND = 5.0
"""The credential_stuffing knob's attacker: 300 failed logins a minute, so
AuthFailureSpike (> 100 in 15 minutes) fires within a minute."""


class Traffic:
    """A small built-in load: every flow of the demo API, a few requests a second."""

    def __init__(self, api: str, threads: int = 2, pause: float = 0.15,
                 faults_path: Path | None = None) -> None:
        self.api = api
        self.threads = threads
        self.pause = pause
        self.faults_path = faults_path or settings.faults_path()
        self.stop = threading.Event()
        self.counts: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self._logins = 0
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def _count(self, flow: str, ok: bool) -> None:
        with self._lock:
            self.counts[flow] = self.counts.get(flow, 0) + 1
            if not ok:
                self.errors[flow] = self.errors.get(flow, 0) + 1

    def _loop(self, seed: int) -> None:
        import random

        import httpx

        rng = random.Random(seed)
        jobs: list[str] = []
        with httpx.Client(base_url=self.api, timeout=5.0) as client:
            step = 0
            while not self.stop.is_set():
                step += 1
                flow = rng.choices(["login", "job", "job_status", "assist", "recipes",
                                    "recipe_add", "ws"],
                                   [5, 4, 2, 2, 4, 1, 1])[0]
                if flow == "login" and self._mistyped():
                    flow = "login_bad"
                try:
                    ok = self._flow(client, flow, rng, jobs)
                except Exception:
                    ok = False
                self._count(flow, ok)
                self.stop.wait(self.pause * rng.uniform(0.5, 1.5))

    def _mistyped(self) -> bool:
        """Every ``BAD_LOGIN_EVERY``-th login (counted across threads) is a wrong password."""
        with self._lock:
            self._logins += 1
            return self._logins % BAD_LOGIN_EVERY == 0

    def _stuffing_loop(self) -> None:
        """While the credential_stuffing knob is on: wrong passwords for many user names."""
        import random

        import httpx

        faults = settings.FaultReader(self.faults_path, interval=1.0)
        rng = random.Random(-1)
        with httpx.Client(base_url=self.api, timeout=5.0) as client:
            while not self.stop.is_set():
                if not faults.get()["credential_stuffing"]:
                    self.stop.wait(1.0)
                    continue
                try:
                    ok = client.post("/login", json={
                        "username": f"victim-{rng.randint(1, 100_000)}",
                        "password": f"leaked-{rng.randint(1, 1_000_000)}"}).status_code == 401
                except Exception:
                    ok = False
                self._count("credential_stuffing", ok)
                self.stop.wait(1 / STUFFING_PER_SECOND)

    def _flow(self, client: httpx.Client, flow: str, rng: random.Random,
              jobs: list[str]) -> bool:
        if flow == "login":
            return bool(client.post("/login", json={"username": f"user-{rng.randint(1, 50)}",
                                                    "password": "demo-password"}).is_success)
        if flow == "login_bad":
            return client.post("/login", json={"username": "mallory",
                                               "password": "guess"}).status_code == 401
        if flow == "job":
            response = client.post("/jobs", json={"pages": rng.randint(1, 6)})
            if response.status_code == 202:
                jobs.append(response.json()["job_id"])
                del jobs[:-20]
            return response.status_code == 202
        if flow == "job_status":
            if not jobs:
                return True
            return client.get(f"/jobs/{rng.choice(jobs)}").status_code in (200, 404)
        if flow == "assist":
            return bool(client.post("/assist", json={"prompt": "what can I cook with "
                                                     "lentils and rice?"}).is_success)
        if flow == "recipes":
            return bool(client.get("/recipes", params={"q": rng.choice(
                ["soup", "pie", "rice", ""])}).is_success)
        if flow == "recipe_add":
            return client.post("/recipes", json={"name": f"dish {rng.randint(1, 999)}",
                                                 "minutes": 20}).status_code == 201
        if flow == "ws":
            return self._websocket(rng)
        return False

    def _websocket(self, rng: random.Random) -> bool:
        from websockets.sync.client import connect

        ws_url = self.api.replace("http://", "ws://", 1) + "/ws/chat"
        with connect(ws_url, open_timeout=5, close_timeout=2) as ws:
            for _ in range(rng.randint(1, 4)):
                ws.send("hello")
                if not str(ws.recv(timeout=5)).startswith("echo:"):
                    return False
        return True

    def start(self) -> None:
        for i in range(self.threads):
            thread = threading.Thread(target=self._loop, args=(i,), name=f"traffic-{i}",
                                      daemon=True)
            thread.start()
            self._workers.append(thread)
        attacker = threading.Thread(target=self._stuffing_loop, name="traffic-stuffing",
                                    daemon=True)
        attacker.start()
        self._workers.append(attacker)

    def close(self) -> None:
        self.stop.set()
        for thread in self._workers:
            thread.join(10)

    def summary(self) -> str:
        with self._lock:
            total = sum(self.counts.values())
            failed = sum(self.errors.values())
            flows = ", ".join(f"{k} {v}" + (f" ({self.errors[k]} failed)" if k in self.errors
                                            else "") for k, v in sorted(self.counts.items()))
        return f"{total} requests, {failed} not as expected: {flows}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.traffic", description=__doc__)
    parser.add_argument("--url", default=settings.url("api"), help="the demo API")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=0.0, help="0: until stopped")
    args = parser.parse_args(argv)
    traffic = Traffic(args.url, threads=args.threads)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: traffic.stop.set())
    traffic.start()
    print(f"traffic: driving {args.url}", flush=True)
    traffic.stop.wait(args.seconds or None)
    traffic.close()
    print(f"traffic: {traffic.summary()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
