"""Python's ProcessPoolExecutor on the same work as benches/process_pool.rs, for comparison.

Prints one line per measurement: `python <name> <median microseconds per job>`.
"""
import concurrent.futures as cf
import statistics
import sys
import time


def trivial(x):
    return x + 1


def one_at_a_time(pool, rounds):
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for i in range(100):
            pool.submit(trivial, i).result()
        samples.append((time.perf_counter() - t) / 100)
    return statistics.median(samples)


def in_flight(pool, rounds, n=1000):
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        futures = [pool.submit(trivial, i) for i in range(n)]
        for f in futures:
            f.result()
        samples.append((time.perf_counter() - t) / n)
    return statistics.median(samples)


if __name__ == "__main__":
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    with cf.ProcessPoolExecutor(max_workers=workers) as pool:
        for f in [pool.submit(trivial, i) for i in range(100)]:
            f.result()  # warm: every worker started
        print(f"python round_trip_one_at_a_time {one_at_a_time(pool, 10) * 1e6:.1f}")
        print(f"python round_trip_1000_in_flight {in_flight(pool, 5) * 1e6:.1f}")
