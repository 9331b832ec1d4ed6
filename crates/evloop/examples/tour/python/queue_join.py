# The asyncio docs' Queue example (https://docs.python.org/3/library/asyncio-queue.html#examples):
# three workers take "work items" (sleep times) from a Queue, and main waits with Queue.join().
# Two changes so that every run prints the same lines, even on a loaded machine: fixed sleep times
# instead of random.uniform(0.05, 1.0) (chosen in that range so that every completion is at least
# 120 ms from any other), and the parallel time printed to the second (it is 4.03 s plus the
# loop's overhead).
import asyncio
import time

SLEEPS = [0.96, 0.31, 0.08, 0.5, 0.77, 0.67, 0.77, 0.77, 0.27, 0.68,
          0.96, 0.15, 0.46, 0.76, 0.94, 0.12, 0.39, 0.61, 0.57, 0.63]


async def worker(name, queue):
    while True:
        # Get a "work item" out of the queue.
        sleep_for = await queue.get()

        # Sleep for the "sleep_for" seconds.
        await asyncio.sleep(sleep_for)

        # Notify the queue that the "work item" has been processed.
        queue.task_done()

        print(f'{name} has slept for {sleep_for:.2f} seconds')


async def main():
    # Create a queue that we will use to store our "workload".
    queue = asyncio.Queue()

    # Put the timings into the queue.
    total_sleep_time = 0
    for sleep_for in SLEEPS:
        total_sleep_time += sleep_for
        queue.put_nowait(sleep_for)

    # Create three worker tasks to process the queue concurrently.
    tasks = []
    for i in range(3):
        task = asyncio.create_task(worker(f'worker-{i}', queue))
        tasks.append(task)

    # Wait until the queue is fully processed.
    started_at = time.monotonic()
    await queue.join()
    total_slept_for = time.monotonic() - started_at

    # Cancel our worker tasks.
    for task in tasks:
        task.cancel()
    # Wait until all worker tasks are cancelled.
    await asyncio.gather(*tasks, return_exceptions=True)

    print('====')
    print(f'3 workers slept in parallel for {total_slept_for:.0f} seconds')
    print(f'total expected sleep time: {total_sleep_time:.2f} seconds')


asyncio.run(main())
