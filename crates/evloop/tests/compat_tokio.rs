//! `evloop::compat::tokio`: tokio-util codecs and `tokio::io` helpers on evloop streams, and the
//! documented ways (and the one failure) of running tokio-only futures inside evloop.

use std::time::Duration;

use evloop::compat::tokio::TokioIo;
use evloop::net::UnixStream;
use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::{Framed, LengthDelimitedCodec, LinesCodec};

/// The example itself, so the test runs exactly what a user runs.
#[path = "../examples/codec.rs"]
mod codec_example;

#[test]
fn the_codec_example_runs() {
    let answers = evloop::run(codec_example::demo()).unwrap().unwrap();
    assert_eq!(answers[0], ("hello".to_owned(), "HELLO".to_owned()));
    assert_eq!(answers.len(), 3);
}

#[test]
fn a_lines_codec_round_trips_over_an_evloop_socket() {
    let received = evloop::run(async {
        let (a, b) = UnixStream::pair().unwrap();
        let mut writer = Framed::new(TokioIo::new(a), LinesCodec::new());
        let mut reader = Framed::new(TokioIo::new(b), LinesCodec::new());
        let sender = evloop::create_task(async move {
            for line in ["one", "two", "three"] {
                writer.send(line).await.unwrap();
            }
        });
        let mut received = Vec::new();
        for _ in 0..3 {
            received.push(reader.next().await.unwrap().unwrap());
        }
        sender.await.unwrap();
        // The writer was dropped with its task: the reader sees the end.
        assert!(reader.next().await.is_none());
        received
    })
    .unwrap();
    assert_eq!(received, ["one", "two", "three"]);
}

#[test]
fn a_length_delimited_frame_larger_than_the_socket_buffer_arrives_whole() {
    let frame = vec![7u8; 1 << 20];
    let expected = frame.clone();
    let got = evloop::run(async move {
        let (a, b) = UnixStream::pair().unwrap();
        let mut writer = Framed::new(TokioIo::new(a), LengthDelimitedCodec::new());
        let mut reader = Framed::new(TokioIo::new(b), LengthDelimitedCodec::new());
        let sender = evloop::create_task(async move {
            writer
                .send(tokio_util::bytes::Bytes::from(frame))
                .await
                .unwrap();
        });
        let got = reader.next().await.unwrap().unwrap();
        sender.await.unwrap();
        got
    })
    .unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected[..]);
}

#[test]
fn tokio_io_copy_works_on_evloop_streams() {
    let copied = evloop::run(async {
        let (a, b) = UnixStream::pair().unwrap();
        let writer = evloop::create_task(async move {
            let mut a = TokioIo::new(a);
            let mut source: &[u8] = b"copied by tokio::io::copy";
            tokio::io::copy(&mut source, &mut a).await.unwrap();
            tokio::io::AsyncWriteExt::shutdown(&mut a).await.unwrap();
        });
        let mut sink = Vec::new();
        tokio::io::copy(&mut TokioIo::new(b), &mut sink)
            .await
            .unwrap();
        writer.await.unwrap();
        sink
    })
    .unwrap();
    assert_eq!(copied, b"copied by tokio::io::copy");
}

#[test]
fn tokio_timers_without_a_tokio_runtime_fail_the_task_not_the_loop() {
    let outcome = evloop::run(async {
        // tokio::time::sleep looks for the runtime when it is made, inside the task here.
        let task =
            evloop::create_task(async { tokio::time::sleep(Duration::from_millis(1)).await });
        let error = task.await.unwrap_err();
        evloop::sleep(Duration::from_millis(1)).await; // the loop goes on
        error
    })
    .unwrap();
    assert!(outcome.is_panic());
    assert!(
        outcome.to_string().contains("Tokio 1.x runtime"),
        "{outcome}"
    );
}

#[test]
fn a_future_spawned_on_a_tokio_runtime_is_awaited_from_evloop() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let value = evloop::run(async move {
        let job = handle.spawn(async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            "from tokio"
        });
        job.await.unwrap()
    })
    .unwrap();
    assert_eq!(value, "from tokio");
}

#[test]
fn inside_an_entered_multi_thread_runtime_tokio_timers_and_sockets_work_in_evloop_tasks() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let echoed = evloop::run(async {
        // Neither is Send-bound here: they run in evloop tasks on this thread.
        let shared = std::rc::Rc::new(std::cell::Cell::new(0));
        tokio::time::sleep(Duration::from_millis(2)).await;
        shared.set(1);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = evloop::create_task(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4];
            tokio::io::AsyncReadExt::read_exact(&mut stream, &mut buf)
                .await
                .unwrap();
            buf
        });
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut client, b"tick")
            .await
            .unwrap();
        (server.await.unwrap(), shared.get())
    })
    .unwrap();
    assert_eq!(echoed, (*b"tick", 1));
}
