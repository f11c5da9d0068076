//! Accepting connections: hyper's HTTP/1.1 connection builder with a header-read timeout
//! (which needs a timer, or it is silently off), header and buffer caps, a cap on
//! concurrent connections, and graceful shutdown that drains in-flight requests and then
//! flushes the store.

use super::cors::Cors;
use super::router::Router;
use crate::domain::Sessiond;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Limits that protect the server from its clients.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted; larger gets 413 before it is read.
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers); larger gets 431 in the shape's
    /// format (the router checks it exactly). As a backstop hyper stops buffering a head at
    /// four times this (at least 64 KiB) and answers a 431 with an empty body itself: its
    /// check runs only between reads, so it cannot be the exact one.
    pub max_head_bytes: usize,
    /// Time to send a request head (also the keep-alive idle timeout).
    pub header_timeout: Duration,
    /// Time to send a request body once the head is in.
    pub body_timeout: Duration,
    /// Concurrent connections; more are closed at once.
    pub max_connections: usize,
    /// Time in-flight requests get to finish at shutdown.
    pub drain_timeout: Duration,
    /// Requests per calendar minute from one credential (the same credential headers) to the
    /// Rownd, Connect, Flashback and Rocket.Chat endpoints; more get 429 with `Retry-After`.
    /// 0 turns the guard off. Okta has its own documented per-token limits.
    pub per_credential_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_head_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 4096,
            drain_timeout: Duration::from_secs(10),
            per_credential_per_minute: 1200,
        }
    }
}

/// How the server answers, beyond its limits: TLS, and CORS for browsers.
#[derive(Clone, Default)]
pub struct Options {
    pub limits: Limits,
    /// Serve TLS (rustls) instead of plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub cors: Cors,
}

/// Plain HTTP, no CORS: [`serve_with`] with these limits.
pub async fn serve(
    listener: TcpListener,
    state: Sessiond,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let options = Options {
        limits,
        ..Options::default()
    };
    serve_with(listener, state, options, shutdown).await
}

/// Serves until `shutdown` resolves, then stops accepting, drains, and flushes the store.
/// Also runs the service's background work (`Sessiond::start_background`) meanwhile. With
/// TLS, each connection's handshake runs in its own task, within the header timeout.
pub async fn serve_with(
    listener: TcpListener,
    state: Sessiond,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let Options { limits, tls, cors } = options;
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let backstop = limits.max_head_bytes.saturating_mul(4).max(64 * 1024);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(backstop)
        .max_header_size(backstop)
        .max_headers(100)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let router = Arc::new(Router::new(state.clone(), limits.clone()).with_cors(cors));
    state.start_background().map_err(std::io::Error::other)?;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: wait a little, never stop serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "connection limit reached; closing a new connection");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let service = service_fn(move |req| {
                    let router = router.clone();
                    // Each request runs in its own task, so a panic in a handler becomes a
                    // 500 for that request instead of taking the connection's task with it.
                    async move {
                        let handled =
                            tokio::spawn(async move { router.handle(req).await });
                        Ok::<_, Infallible>(match handled.await {
                            Ok(r) => r,
                            Err(e) => {
                                tracing::error!(error = %e, "a request handler panicked");
                                super::wire::json(
                                    http::StatusCode::INTERNAL_SERVER_ERROR,
                                    &serde_json::json!({"error": "internal error"}),
                                )
                            }
                        })
                    }
                });
                let (watcher, builder, tls) = (graceful.watcher(), builder.clone(), tls.clone());
                let handshake_timeout = limits.header_timeout;
                tokio::spawn(async move {
                    let ended = match tls {
                        None => watcher
                            .watch(builder.serve_connection(TokioIo::new(stream), service))
                            .await,
                        Some(acceptor) => {
                            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => {
                                    watcher
                                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                                        .await
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    Ok(())
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    Ok(())
                                }
                            }
                        }
                    };
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain_timeout) => {
            tracing::warn!("shutdown: in-flight requests did not finish in time");
        }
    }
    // Counts of the last revocations go into the audit log before the last flush.
    if tokio::time::timeout(limits.drain_timeout, state.audit_idle())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: audit counts not finished; they resume at the next start");
    }
    let st = state.clone();
    tokio::task::spawn_blocking(move || st.store().sync_blocking())
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
    Ok(())
}
