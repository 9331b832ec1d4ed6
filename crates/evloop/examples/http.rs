//! A hyper 1.x HTTP/1.1 server on evloop: plain text and JSON, no glue code of its own.
//!
//! ```text
//! cargo run --release -p evloop --features hyper --example http -- 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/          # Hello, World!
//! curl -i http://127.0.0.1:8080/json      # {"message":"Hello, World!"}
//! wrk -t1 -c50 -d10s http://127.0.0.1:8080/json
//! ```
//!
//! One task per connection; hyper's keep-alive and header-read timeout run on the loop's timer
//! (`LoopTimer`). `benches/http.rs` serves [`service`] on this loop and on tokio's current-thread
//! runtime side by side.

use std::convert::Infallible;
use std::time::Duration;

use evloop::compat::hyper::{HyperIo, LoopTimer};
use evloop::net::TcpListener;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

/// The routes: `GET /` is plain text, `GET /json` is JSON, anything else is 404.
pub(crate) async fn service(
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => ("text/plain", Bytes::from_static(b"Hello, World!")),
        (&Method::GET, "/json") => {
            let json = serde_json::json!({ "message": "Hello, World!" });
            ("application/json", Bytes::from(json.to_string()))
        }
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return Ok(response);
        }
    };
    let mut response = Response::new(Full::new(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// Serves [`service`] on `listener` until the task is cancelled.
pub(crate) async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let timer = LoopTimer::new().map_err(std::io::Error::other)?;
    loop {
        let (stream, _peer) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let timer = timer.clone();
        evloop::create_task(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(timer)
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(HyperIo::new(stream), hyper::service::service_fn(service))
                .await;
            // A client that goes away mid-request ends only its own connection.
            match served {
                Err(error) if !error.is_incomplete_message() => {
                    eprintln!("connection error: {error}");
                }
                _ => {}
            }
        })
        .detach();
    }
}

#[allow(dead_code)] // benches/http.rs includes this file for `serve` and `service` only.
#[evloop::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listener = TcpListener::bind(addr.as_str())?;
    println!("http server listening on http://{}", listener.local_addr()?);
    serve(listener).await
}
