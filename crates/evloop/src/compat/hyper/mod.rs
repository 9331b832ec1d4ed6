//! hyper 1.x on evloop, with no glue to write: [`HyperIo`] gives an evloop stream hyper's
//! `Read`/`Write`, [`LoopExecutor`] spawns hyper's background futures as loop tasks (and
//! [`RemoteExecutor`] does the same from any thread), and [`LoopTimer`] is hyper's `Timer` on the
//! loop's clock, `Send + Sync` as hyper requires, with each sleep cancelled on the loop when it is
//! dropped.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use evloop::compat::hyper::{HyperIo, LoopTimer};
//! use evloop::net::{TcpListener, TcpStream};
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::body::Bytes;
//! use hyper::{Request, Response};
//!
//! async fn hello(_: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     Ok(Response::new(Full::new(Bytes::from("Hello, World!"))))
//! }
//!
//! let body = evloop::run(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     let server = evloop::create_task(async move {
//!         let (stream, _) = listener.accept().await.unwrap();
//!         hyper::server::conn::http1::Builder::new()
//!             .timer(LoopTimer::new().unwrap())
//!             .serve_connection(HyperIo::new(stream), hyper::service::service_fn(hello))
//!             .await
//!     });
//!     let stream = TcpStream::connect(addr).await.unwrap();
//!     let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(stream))
//!         .await
//!         .unwrap();
//!     evloop::create_task(conn).detach();
//!     let request = Request::get("/").header("host", "x").body(Empty::<Bytes>::new()).unwrap();
//!     let response = sender.send_request(request).await.unwrap();
//!     let body = response.into_body().collect().await.unwrap().to_bytes();
//!     drop(sender);
//!     server.await.unwrap().unwrap();
//!     body
//! });
//! assert_eq!(body.unwrap(), "Hello, World!");
//! ```

mod executor;
mod io;
mod timer;

pub use executor::{LoopExecutor, RemoteExecutor};
pub use io::HyperIo;
pub use timer::{LoopSleep, LoopTimer};
