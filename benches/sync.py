"""asyncio.Queue and asyncio.Lock on the workloads of benches/sync.rs, which runs this script in
the same bench run and puts its figures next to evloop's, tokio's and async-channel/async-lock's.

Workloads (N as in sync.rs; figure: wall ns per operation, median of SAMPLES timed passes after
one untimed pass):
  queue_ping_pong   two tasks bounce an int through two Queue(1): ns per round trip
  queue_stream      a producer task puts N ints into a Queue(128), main gets them: ns per item
  lock_contended    100 tasks take one Lock 1,000 times each, holding it across sleep(0):
                    ns per acquire/release
  lock_uncontended  one task takes and releases a free Lock N times: ns per acquire/release

Prints one line per figure, as the peers harness does:
  workload=<name> impl=<asyncio|uvloop> value=<number> unit=ns_per_op
Usage: sync.py [--loop asyncio|uvloop] [--samples N] [--scale F]
"""
import argparse
import asyncio
import gc
import statistics
import time

PING_PONG = 100_000
STREAM = 1_000_000
LOCK_TASKS, LOCK_ROUNDS = 100, 1_000
UNCONTENDED = 1_000_000


def loop_factory(kind):
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    return asyncio.new_event_loop


async def queue_ping_pong(n):
    ping, pong = asyncio.Queue(1), asyncio.Queue(1)

    async def echo():
        while True:
            await pong.put(await ping.get())

    task = asyncio.create_task(echo())
    t0 = time.perf_counter_ns()
    for i in range(n):
        await ping.put(i)
        await pong.get()
    elapsed = time.perf_counter_ns() - t0
    task.cancel()
    return elapsed / n


async def queue_stream(n):
    queue = asyncio.Queue(128)

    async def produce():
        for i in range(n):
            await queue.put(i)

    t0 = time.perf_counter_ns()
    task = asyncio.create_task(produce())
    for _ in range(n):
        await queue.get()
    await task
    return (time.perf_counter_ns() - t0) / n


async def lock_contended(tasks, rounds):
    lock = asyncio.Lock()
    count = 0

    async def worker():
        nonlocal count
        for _ in range(rounds):
            async with lock:
                count += 1
                await asyncio.sleep(0)

    t0 = time.perf_counter_ns()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    assert count == tasks * rounds
    return (time.perf_counter_ns() - t0) / (tasks * rounds)


async def lock_uncontended(n):
    lock = asyncio.Lock()
    t0 = time.perf_counter_ns()
    for _ in range(n):
        async with lock:
            pass
    return (time.perf_counter_ns() - t0) / n


async def measure(name, make, samples):
    await make()  # untimed pass
    figures = []
    for _ in range(samples):
        gc.collect()
        figures.append(await make())
    return name, statistics.median(figures)


async def main(kind, samples, scale):
    def sized(n):
        return max(1, int(n * scale))

    runs = [
        ("queue_ping_pong", lambda: queue_ping_pong(sized(PING_PONG))),
        ("queue_stream", lambda: queue_stream(sized(STREAM))),
        ("lock_contended", lambda: lock_contended(LOCK_TASKS, sized(LOCK_ROUNDS))),
        ("lock_uncontended", lambda: lock_uncontended(sized(UNCONTENDED))),
    ]
    for name, make in runs:
        name, ns = await measure(name, make, samples)
        print(f"workload={name} impl={kind} value={ns:.1f} unit=ns_per_op", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0)
    a = ap.parse_args()
    with asyncio.Runner(loop_factory=loop_factory(a.loop)) as r:
        r.run(main(a.loop, a.samples, a.scale))
