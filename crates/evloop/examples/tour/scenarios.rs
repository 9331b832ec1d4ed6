//! The tour's scenarios, shared with the integration tests that check their exact output.
//!
//! Each prints what asyncio's original program prints ("Task starting", "Task done", "Main
//! done", "Event loop is closed"), so the two can be compared line by line.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use evloop::thread_pool::future::as_completed;
use evloop::{EventLoop, ExceptionContext, ExecutorExt, ProcessPool, ThreadPoolExecutor};

/// How long the programs sleep: asyncio's originals use 2 s for the task; tests use less.
pub(crate) struct Timing {
    /// The worker's sleep.
    pub(crate) task: Duration,
    /// How long main waits before returning early.
    pub(crate) main: Duration,
    /// How long an executor thread blocks (`time.sleep` in S7 and S9).
    pub(crate) thread: Duration,
    /// The limit given to `shutdown_default_executor` in S9.
    pub(crate) join_limit: Duration,
    /// The echo server's port in `streams-echo`: the docs' 8888; tests take any free one.
    pub(crate) echo_port: u16,
    /// Run the queue scenario on a virtual clock (its sleeps take no time, its figures are
    /// exact); the tour itself sleeps for real, as CPython does.
    pub(crate) virtual_clock: bool,
}

impl Timing {
    /// The originals' timings.
    pub(crate) fn asyncio() -> Timing {
        Timing {
            task: Duration::from_secs(2),
            main: Duration::from_millis(100),
            thread: Duration::from_secs(2),
            join_limit: Duration::from_millis(500),
            echo_port: 8888,
            virtual_clock: false,
        }
    }

    /// Short timings for tests (the tour itself uses the originals').
    #[allow(dead_code)]
    pub(crate) fn fast() -> Timing {
        Timing {
            task: Duration::from_millis(200),
            main: Duration::from_millis(20),
            // Far apart, so a loaded machine cannot turn S9's timeout into a join.
            thread: Duration::from_millis(500),
            join_limit: Duration::from_millis(50),
            echo_port: 0,
            virtual_clock: true,
        }
    }
}

type Scenario = fn(&Timing);

/// Every scenario, in tour order.
pub(crate) const ALL: &[(&str, Scenario)] = &[
    ("callbacks", callbacks),
    ("normal-exit", normal_exit),
    ("early-return", early_return),
    ("task-left-pending", task_left_pending),
    ("main-fails", main_fails),
    ("task-fails", task_fails),
    ("close-inside", close_inside),
    ("stop-inside", stop_inside),
    ("thread-blocks-exit", thread_blocks_exit),
    ("shutdown-timeout", shutdown_timeout),
    ("executors", executors),
    ("executor-futures", executor_futures),
    ("subprocess-outlives", subprocess_outlives),
    ("streams-echo", streams_echo),
    ("queue-join", queue_join),
];

/// Prints how `run()` ended, the way a Python traceback would end the program.
fn report<T>(outcome: Result<Result<T, String>, evloop::RunError>) {
    match outcome {
        Ok(Ok(_)) => println!("Event loop is closed"),
        Ok(Err(error)) => println!("Error: {error}"),
        Err(error) => println!("Error: {error}"),
    }
}

/// Prints when the worker's future is dropped unfinished: Rust's `finally`.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        println!("Task cleanup (cancelled)");
    }
}

async fn worker(sleep_for: Duration) {
    let cleanup = Cleanup;
    println!("Task starting");
    evloop::sleep(sleep_for).await;
    println!("Task done");
    std::mem::forget(cleanup);
}

/// The engine alone: call_soon order, call_later, a call from another thread, a panic caught
/// by the exception handler, and stop.
pub(crate) fn callbacks(_: &Timing) {
    let lp = EventLoop::new().expect("a new loop");
    lp.set_exception_handler(Some(Rc::new(|_: &EventLoop, ctx: &ExceptionContext| {
        let error = ctx.exception.as_ref().map(|e| e.to_string());
        println!(
            "exception handler: {} ({})",
            ctx.message,
            error.unwrap_or_default()
        );
    })));
    for n in 1..=3 {
        lp.call_soon(move || println!("call_soon: callback {n}"))
            .expect("loop is open");
    }
    let remote = lp.remote();
    let thread = std::thread::spawn(move || {
        remote
            .call_soon_threadsafe(|| {
                println!("call_soon_threadsafe: hello from another thread");
                let lp = evloop::get_running_loop().expect("on the loop");
                let later = lp.clone();
                lp.call_later(Duration::from_millis(50), move || {
                    println!("call_later: fired after 50 ms");
                    later.call_soon(|| panic!("boom")).expect("open");
                    later
                        .call_soon(|| println!("the loop goes on after the panic"))
                        .expect("open");
                    let stopper = later.clone();
                    later.call_soon(move || stopper.stop()).expect("open");
                })
                .expect("open");
            })
            .expect("loop is open");
    });
    lp.run_forever().expect("runs");
    thread.join().expect("thread ends");
    println!("stop: run_forever returned");
    lp.close().expect("not running");
    println!("Event loop is closed");
}

/// S1: main awaits a task that sleeps.
pub(crate) fn normal_exit(timing: &Timing) {
    let task_sleep = timing.task;
    report(evloop::run(async move {
        let task = evloop::create_task(worker(task_sleep));
        task.await.map_err(|e| e.to_string())?;
        println!("Main done");
        Ok(())
    }));
}

/// S2: main returns while the task sleeps (the line after `return` never runs); run() cancels
/// the task during its shutdown.
pub(crate) fn early_return(timing: &Timing) {
    let (task_sleep, main_sleep) = (timing.task, timing.main);
    report(evloop::run(async move {
        let _task = evloop::create_task(worker(task_sleep));
        evloop::sleep(main_sleep).await;
        Ok::<_, String>(())
    }));
}

/// main returns right after a zero sleep: the task has started, nothing more.
pub(crate) fn task_left_pending(timing: &Timing) {
    let task_sleep = timing.task;
    report(evloop::run(async move {
        evloop::create_task(worker(task_sleep)).detach();
        evloop::sleep(Duration::ZERO).await;
        println!("Main done");
        Ok::<_, String>(())
    }));
}

/// S3: main fails while the task sleeps; the task's clean-up runs before the caller sees it.
pub(crate) fn main_fails(timing: &Timing) {
    let (task_sleep, main_sleep) = (timing.task, timing.main);
    report(evloop::run(async move {
        evloop::create_task(worker(task_sleep)).detach();
        evloop::sleep(main_sleep).await;
        Err::<(), _>("Stop this thing".to_owned())
    }));
}

/// The awaited task fails; the failure travels through main to the caller.
pub(crate) fn task_fails(timing: &Timing) {
    let task_sleep = timing.task;
    report(evloop::run(async move {
        let task = evloop::create_task(async move {
            println!("Task starting");
            evloop::sleep(task_sleep / 10).await;
            Err::<(), _>("Stop this thing".to_owned())
        });
        task.await.map_err(|e| e.to_string())??;
        println!("Main done");
        Ok(())
    }));
}

/// S4: close() from inside a coroutine, with a task running: refused, and main fails with it.
pub(crate) fn close_inside(timing: &Timing) {
    let (task_sleep, main_sleep) = (timing.task, timing.main);
    report(evloop::run(async move {
        let _task = evloop::create_task(worker(task_sleep));
        evloop::sleep(main_sleep).await;
        let lp = evloop::get_running_loop().map_err(|e| e.to_string())?;
        lp.close().map_err(|e| e.to_string())?;
        println!("Main done");
        Ok(())
    }));
}

/// S5: stop() from inside a coroutine, with a task running: main finishes its step, and the
/// stop reaches run()'s clean-up, which fails as asyncio's does.
pub(crate) fn stop_inside(timing: &Timing) {
    let (task_sleep, main_sleep) = (timing.task, timing.main);
    report(evloop::run(async move {
        let _task = evloop::create_task(worker(task_sleep));
        evloop::sleep(main_sleep).await;
        let lp = evloop::get_running_loop().map_err(|e| e.to_string())?;
        lp.stop();
        println!("Main done");
        Ok(())
    }));
}

/// Blocks until `flag` is set, on the loop: a scenario waits for its executor thread to have
/// started, so that a loaded machine cannot make a cancellation win the race the original
/// program's 0.1 s sleep is meant to lose.
async fn until_set(flag: &AtomicBool) {
    while !flag.load(Ordering::Acquire) {
        evloop::sleep(Duration::from_millis(1)).await;
    }
}

/// S7: main returns while `to_thread` blocks; run() waits for the thread before it returns.
pub(crate) fn thread_blocks_exit(timing: &Timing) {
    let (thread_sleep, main_sleep) = (timing.thread, timing.main);
    let started = Arc::new(AtomicBool::new(false));
    report(evloop::run(async move {
        let flag = started.clone();
        evloop::create_task(async move {
            println!("Task starting");
            let _ = evloop::to_thread(move || {
                flag.store(true, Ordering::Release);
                std::thread::sleep(thread_sleep);
                println!("Task done");
            })
            .await;
            // Never printed: the task is cancelled while the thread sleeps.
            println!("worker coroutine resumed after thread");
        })
        .detach();
        evloop::sleep(main_sleep).await;
        until_set(&started).await;
        println!("Main done");
        Ok::<_, String>(())
    }));
}

/// S9: `shutdown_default_executor` with a limit shorter than the running job: the warning, then
/// the default executor is refused; run() still waits for the thread.
pub(crate) fn shutdown_timeout(timing: &Timing) {
    let (thread_sleep, limit) = (timing.thread, timing.join_limit);
    report(evloop::run(async move {
        let lp = evloop::get_running_loop().map_err(|e| e.to_string())?;
        lp.set_exception_handler(Some(Rc::new(|_: &EventLoop, ctx: &ExceptionContext| {
            println!("RuntimeWarning: {}", ctx.message);
        })));
        let started = Arc::new(AtomicBool::new(false));
        let flag = started.clone();
        let _job = lp
            .run_in_executor(None, move || {
                flag.store(true, Ordering::Release);
                std::thread::sleep(thread_sleep);
                println!("thread finished sleeping");
            })
            .map_err(|e| e.to_string())?;
        until_set(&started).await;
        lp.shutdown_default_executor(Some(limit)).await;
        println!("shutdown_default_executor returned");
        match lp.run_in_executor(None, || ()) {
            Ok(_) => println!("run_in_executor after shutdown -> accepted"),
            Err(error) => println!("run_in_executor after shutdown -> {error}"),
        }
        Ok(())
    }));
}

/// Reads 100 bytes from /dev/urandom: asyncio's `blocking_io`.
fn blocking_io() -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = vec![0; 100];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// asyncio's `cpu_bound`: the sum of i*i for i below `n` (n arrives at run time, through the
/// process pool, so the compiler cannot fold the loop away).
fn cpu_bound(n: u64) -> u128 {
    (0..n).map(|i| u128::from(i) * u128::from(i)).sum()
}

/// Bytes as Python prints them (`print(b)` shows `b'...'`), so the lines read as the original's.
fn python_bytes(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = format!("b{quote}");
    for &byte in bytes {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if char::from(byte) == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push(quote);
    out
}

/// S8, asyncio's documented `run_in_executor` example: the default thread pool, a custom thread
/// pool and a custom process pool.
pub(crate) fn executors(_: &Timing) {
    report(evloop::run(async {
        let lp = evloop::get_running_loop().map_err(|e| e.to_string())?;
        let text = |r: std::io::Result<Vec<u8>>| match r {
            Ok(bytes) => python_bytes(&bytes),
            Err(error) => format!("error: {error}"),
        };

        let result = lp
            .run_in_executor(None, blocking_io)
            .map_err(|e| e.to_string())?;
        let result = result.await.map_err(|e| e.to_string())?;
        println!("default thread pool {}", text(result));

        // Python's `with ThreadPoolExecutor() as pool:` is a pool dropped at the end of a block.
        {
            let pool = ThreadPoolExecutor::new();
            let result = lp
                .run_in_executor(Some(&pool), blocking_io)
                .map_err(|e| e.to_string())?;
            let result = result.await.map_err(|e| e.to_string())?;
            println!("custom thread pool {}", text(result));
        }

        {
            let pool = ProcessPool::new();
            let result = lp
                .run_in_process_pool(&pool, cpu_bound, std::hint::black_box(10_000_000))
                .map_err(|e| e.to_string())?;
            let result = result.await.map_err(|e| e.to_string())?;
            println!("custom process pool {result}");
        }
        Ok(())
    }));
}

/// One result, "The result is 42", three ways: a pool future's done callback, `as_completed`
/// over pool futures, and `run_in_executor` awaited on the loop.
pub(crate) fn executor_futures(_: &Timing) {
    let pool = ThreadPoolExecutor::new();

    let (tx, rx) = std::sync::mpsc::channel();
    let future = pool.submit(|| 6 * 7).expect("pool is open");
    future.add_done_callback(move |result| {
        println!(
            "The result is {} (done callback)",
            result.as_ref().expect("no panic")
        );
        let _ = tx.send(());
    });
    rx.recv().expect("the callback runs");

    let futures = [
        pool.submit(|| 40).expect("open"),
        pool.submit(|| 2).expect("open"),
    ];
    let sum: i32 = as_completed(futures)
        .map(|f| f.wait().expect("no panic"))
        .sum();
    println!("The result is {sum} (as_completed)");

    report(evloop::run(async move {
        let lp = evloop::get_running_loop().map_err(|e| e.to_string())?;
        let job = lp
            .run_in_executor(Some(&pool), || 6 * 7)
            .map_err(|e| e.to_string())?;
        let value = job.await.map_err(|e| e.to_string())?;
        println!("The result is {value} (run_in_executor)");
        Ok(())
    }));
}

/// S6: main returns while a task awaits `create_subprocess_shell("sleep 2; echo hi")`. Closing
/// the loop sends the child no signal: it runs on and prints "hi" after "Event loop is closed".
pub(crate) fn subprocess_outlives(timing: &Timing) {
    let (child_sleep, main_sleep) = (timing.task, timing.main);
    report(evloop::run(async move {
        evloop::create_task(async move {
            println!("Task starting");
            let cmd = format!("sleep {}; echo hi", child_sleep.as_secs_f64());
            let child = evloop::process::create_subprocess_shell(cmd)
                .spawn()
                .expect("spawn sh");
            // Cancelled by run()'s shutdown while the child still runs.
            child.wait().await;
            println!("Task done");
        })
        .detach();
        evloop::sleep(main_sleep).await;
        println!("Main done");
        Ok::<_, String>(())
    }));
}

/// Python's `repr` of a socket address: `('127.0.0.1', 8888)`.
fn py_addr(addr: &evloop::transport::SockAddr) -> String {
    match addr {
        evloop::transport::SockAddr::Inet(a) => format!("('{}', {})", a.ip(), a.port()),
        other => format!("'{other}'"),
    }
}

/// Python's `repr` of a str.
fn py_str(bytes: &[u8]) -> String {
    format!("'{}'", String::from_utf8_lossy(bytes))
}

async fn handle_echo(reader: evloop::streams::StreamReader, writer: evloop::streams::StreamWriter) {
    let data = reader.read(100).await.expect("read");
    let message = py_str(&data);
    let addr = writer.transport().peername().expect("connected");
    println!("Received {message} from {}", py_addr(&addr));
    println!("Send: {message}");
    writer.write(&data).expect("open");
    writer.drain().await.expect("drained");
    println!("Close the connection");
    writer.close();
    let _ = writer.wait_closed().await;
}

async fn tcp_echo_client(message: &str, port: u16) -> Result<(), String> {
    let (reader, writer) = evloop::streams::open_connection("127.0.0.1", port)
        .await
        .map_err(|e| e.to_string())?;
    println!("Send: {}", py_str(message.as_bytes()));
    writer
        .write(message.as_bytes())
        .map_err(|e| e.to_string())?;
    writer.drain().await.map_err(|e| e.to_string())?;
    let data = reader.read(100).await.map_err(|e| e.to_string())?;
    println!("Received: {}", py_str(&data));
    println!("Close the connection");
    writer.close();
    writer.wait_closed().await.map_err(|e| e.to_string())
}

/// The asyncio docs' TCP echo server and client (streams), in one program: the lines of
/// `python/streams_echo.py` (its only difference: the client port, which the kernel picks).
pub(crate) fn streams_echo(timing: &Timing) {
    let port = timing.echo_port;
    let outcome = evloop::run(async move {
        let server = evloop::streams::start_server(handle_echo, Some("127.0.0.1"), port)
            .await
            .map_err(|e| e.to_string())?;
        let addrs: Vec<String> = server.sockets().iter().map(py_addr).collect();
        println!("Serving on {}", addrs.join(", "));
        let port = server.tcp_addrs()[0].port();
        let result = tcp_echo_client("Hello World!", port).await;
        // `async with server`: close it and wait for its connections.
        server.close();
        server.wait_closed().await;
        result
    });
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => println!("Error: {error}"),
        Err(error) => println!("Error: {error}"),
    }
}

/// The asyncio docs' `Queue` example: three workers take sleep times from a queue and main
/// waits with `join()`, then cancels them. Fixed sleep times (see the Python version,
/// python/queue_join.py), so that both print the same lines.
pub(crate) fn queue_join(timing: &Timing) {
    const SLEEPS: [f64; 20] = [
        0.96, 0.31, 0.08, 0.5, 0.77, 0.67, 0.77, 0.77, 0.27, 0.68, 0.96, 0.15, 0.46, 0.76, 0.94,
        0.12, 0.39, 0.61, 0.57, 0.63,
    ];

    async fn worker(name: String, queue: evloop::Queue<f64>) {
        // Get a "work item" out of the queue, until the worker is cancelled.
        while let Ok(sleep_for) = queue.get().await {
            evloop::sleep(Duration::from_secs_f64(sleep_for)).await;
            // Notify the queue that the "work item" has been processed.
            queue.task_done().expect("one task_done per get");
            println!("{name} has slept for {sleep_for:.2} seconds");
        }
    }

    let mut runner =
        evloop::Runner::with_builder(EventLoop::builder().virtual_clock(timing.virtual_clock));
    report(runner.run(async {
        let queue = evloop::Queue::new(0);
        let mut total_sleep_time = 0.0;
        for sleep_for in SLEEPS {
            total_sleep_time += sleep_for;
            queue.put_nowait(sleep_for).map_err(|e| e.to_string())?;
        }
        let tasks: Vec<_> = (0..3)
            .map(|i| evloop::create_task(worker(format!("worker-{i}"), queue.clone())))
            .collect();
        let lp = evloop::get_running_loop().map_err(|e| e.to_string())?;
        let started_at = lp.time();
        queue.join().await;
        let total_slept_for = (lp.time() - started_at).as_secs_f64();
        for task in &tasks {
            task.cancel();
        }
        evloop::gather_settled(tasks).await;
        println!("====");
        println!("3 workers slept in parallel for {total_slept_for:.0} seconds");
        println!("total expected sleep time: {total_sleep_time:.2} seconds");
        Ok(())
    }));
}
