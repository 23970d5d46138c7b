"""Many token requests in flight per process: a thread pool over ``oauthflow.client``
(requests/urllib3) against an asyncio client (httpx.AsyncClient), then the renewal
service itself.

    python -m benchmarks.inflight --in-flight 64 --requests 3000 --latency-ms 0,200

Modes (``--modes``):

* ``threads``: ``--in-flight`` threads, each ``oauthflow.client.post`` (network guard,
  pinned pool, capped read) then ``tokens.parse_token_response``: what a renewal's
  chain costs on a pool thread;
* ``async``: one event loop, ``--in-flight`` requests at once through one
  ``httpx.AsyncClient`` (pool as large), the same parse; no network guard (httpx would
  need its own address pinning) and no query, so it flatters option (b);
* ``service``: ``oauthflow.renewal.config_variables_renew`` over ``--requests`` due rows
  in ``--processes`` processes at once, ``RENEWAL_BATCH_THREADS`` = ``--in-flight``,
  ``RENEWAL_TASK_BATCH``-sized calls, against a rotating endpoint that counts double
  spends. Needs a database of its own: ``DATABASE_URL=postgres://…/renew_bench`` (its
  ConfigVariables are deleted first).

The fake endpoint (``benchmarks.fake_endpoint``, shared with the worker tests) serves
from a process of its own (its CPU is not counted), delaying each reply by
``--latency-ms``. Printed per mode and latency: requests (or
renewals) per second, the client's CPU milliseconds per request (process CPU time /
count), and for ``service`` token requests per renewal and double spends. On a shared
machine the figures are noisy: run each twice.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.fake_endpoint import EndpointProcess, RotatingTokenEndpoint

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

BODY = b"grant_type=client_credentials"
HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Basic eDp5"}


# -- option (a): threads over oauthflow.client; option (b): httpx.AsyncClient --


def run_threads(url: str, in_flight: int, count: int) -> tuple[float, float]:
    from oauthflow import client
    from oauthflow.tokens import parse_token_response

    def one(_: int) -> None:
        parse_token_response(client.post(url, headers=HEADERS, body=BODY))

    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(one, range(in_flight)))  # warm: connections open
        cpu, started = time.process_time(), time.monotonic()
        list(pool.map(one, range(count)))
        return time.monotonic() - started, time.process_time() - cpu


def run_async(url: str, in_flight: int, count: int) -> tuple[float, float]:
    import httpx

    from oauthflow.client import HttpReply
    from oauthflow.tokens import parse_token_response

    async def main() -> tuple[float, float]:
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        async with httpx.AsyncClient(limits=limits, timeout=10) as http:
            gate = asyncio.Semaphore(in_flight)

            async def one() -> None:
                async with gate:
                    started = time.monotonic()
                    response = await http.post(url, headers=HEADERS, content=BODY)
                    parse_token_response(
                        HttpReply(
                            status=response.status_code,
                            headers={k.lower(): v for k, v in response.headers.items()},
                            body=response.content,
                            duration_ms=int((time.monotonic() - started) * 1000),
                        )
                    )

            await asyncio.gather(*(one() for _ in range(in_flight)))
            cpu, started = time.process_time(), time.monotonic()
            await asyncio.gather(*(one() for _ in range(count)))
            return time.monotonic() - started, time.process_time() - cpu

    return asyncio.run(main())


# -- the renewal service itself --


def _rows(url: str, count: int) -> list[str]:
    from datetime import timedelta

    from django.utils import timezone

    from connections.models import App, ConfigVariable, Connection, Customer, Status

    ConfigVariable.objects.filter(connection__app__slug="inflight-bench").delete()
    app, _ = App.objects.update_or_create(
        slug="inflight-bench",
        defaults={
            "name": "Inflight bench",
            "authorize_url": url,
            "token_url": url,
            "client_id": "x",
            "client_secret": "y",
            "pinned_flavor": 1,
        },
    )
    connection, _ = Connection.objects.get_or_create(
        app=app, slug="inflight-bench", defaults={"name": "Inflight bench"}
    )
    customers = Customer.objects.bulk_create(
        [Customer(name=f"Inflight {secrets.token_hex(4)}") for _ in range(count)]
    )
    now = timezone.now()
    rows = ConfigVariable.objects.bulk_create(
        [
            ConfigVariable(
                customer=customer,
                connection=connection,
                status=Status.CONNECTED,
                access_token="a",  # noqa: S106 - a seeded row
                refresh_token=f"start-{index}",
                expires_at=now + timedelta(seconds=30),
                refresh_at=now - timedelta(seconds=1),
            )
            for index, customer in enumerate(customers)
        ]
    )
    return [str(row.pk) for row in rows]


def _service_worker(ids: list[str], in_flight: int, batch: int, out: multiprocessing.Queue):
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from oauthflow import client
    from oauthflow.renewal import config_variables_renew

    connection.close()  # not the parent's connection
    settings.RENEWAL_BATCH_THREADS = in_flight
    client.token_session.cache_clear()  # nor its pooled sockets; sized for in_flight
    renewed = 0
    cpu, started = time.process_time(), time.monotonic()
    for start in range(0, len(ids), batch):
        renewed += config_variables_renew(config_variable_ids=ids[start : start + batch]).renewed
    out.put((renewed, time.monotonic() - started, time.process_time() - cpu))


def run_service(url: str, in_flight: int, count: int, processes: int, batch: int) -> dict:
    ids = _rows(url, count)
    from django.db import connection

    connection.close()
    out: multiprocessing.Queue = multiprocessing.Queue()
    share = -(-len(ids) // processes)
    workers = [
        multiprocessing.Process(
            target=_service_worker, args=(ids[i : i + share], in_flight, batch, out)
        )
        for i in range(0, len(ids), share)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    results = [out.get() for _ in workers]
    wall = time.monotonic() - started
    for worker in workers:
        worker.join()
    renewed = sum(r[0] for r in results)
    return {"renewed": renewed, "wall": wall, "cpu": sum(r[2] for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--latency-ms", default="0,200")
    parser.add_argument("--modes", default="threads,async")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100, help="rows per service call")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings

    settings.RENEWAL_BATCH_THREADS = args.in_flight  # the client's pool follows it
    print(f"in flight {args.in_flight}, {args.requests} requests, {os.cpu_count()} CPUs")
    for latency in [int(value) for value in args.latency_ms.split(",")]:
        fake = RotatingTokenEndpoint(reply_delay=latency / 1000, accept_unknown=True, record=False)
        from django.db import connections

        connections.close_all()  # the endpoint forks
        with EndpointProcess(fake) as endpoint:
            for mode in args.modes.split(","):
                _report(mode, latency, endpoint, args)


def _report(mode: str, latency: int, endpoint: EndpointProcess, args: argparse.Namespace) -> None:
    before = endpoint.stats()
    if mode == "service":
        figures = run_service(
            endpoint.url, args.in_flight, args.requests, args.processes, args.batch
        )
        counts = endpoint.stats().minus(before)
        renewed = max(figures["renewed"], 1)
        print(
            f"{latency:>4} ms  service x{args.processes:<2}"
            f" {figures['renewed'] / figures['wall']:8.0f} renewals/s"
            f"  {1000 * figures['cpu'] / renewed:6.2f} ms CPU/renewal"
            f"  {counts.requests / renewed:.2f} requests/renewal"
            f"  {counts.double_spends} double spends"
        )
        return
    run = run_threads if mode == "threads" else run_async
    wall, cpu = run(endpoint.url, args.in_flight, args.requests)
    print(
        f"{latency:>4} ms  {mode:<11} {args.requests / wall:8.0f} requests/s"
        f"  {1000 * cpu / args.requests:6.2f} ms CPU/request"
    )


if __name__ == "__main__":
    main()
