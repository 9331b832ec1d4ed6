//! tokio-util's codecs on evloop sockets: a line protocol with `Framed` and `LinesCodec`.
//!
//! ```text
//! cargo run -p evloop --features tokio-io --example codec
//! ```
//!
//! A server task answers each line with it upper-cased; the client sends three lines over
//! loopback TCP and prints the answers. `TokioIo` is the only adapter: the codec sees tokio's
//! `AsyncRead`/`AsyncWrite` on an evloop `TcpStream`.

use evloop::compat::tokio::TokioIo;
use evloop::net::{TcpListener, TcpStream};
use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::{Framed, LinesCodec};

async fn shout(stream: TcpStream) -> anyhow::Result<()> {
    let mut lines = Framed::new(TokioIo::new(stream), LinesCodec::new_with_max_length(1024));
    while let Some(line) = lines.next().await {
        lines.send(line?.to_uppercase()).await?;
    }
    Ok(())
}

/// Runs the server and the client; returns each line sent with the answer to it.
pub(crate) async fn demo() -> anyhow::Result<Vec<(String, String)>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = evloop::create_task(async move {
        let (stream, _) = listener.accept().await?;
        shout(stream).await
    });
    let mut client = Framed::new(
        TokioIo::new(TcpStream::connect(addr).await?),
        LinesCodec::new(),
    );
    let mut answers = Vec::new();
    for line in ["hello", "from a tokio-util codec", "on evloop"] {
        client.send(line).await?;
        let answer = client.next().await.expect("the server answers")?;
        answers.push((line.to_owned(), answer));
    }
    drop(client); // EOF ends the server's loop
    server.await??;
    Ok(answers)
}

#[allow(dead_code)] // tests/compat_tokio.rs includes this file for `demo`.
#[evloop::main]
async fn main() -> anyhow::Result<()> {
    for (line, answer) in demo().await? {
        println!("{line} -> {answer}");
    }
    Ok(())
}
