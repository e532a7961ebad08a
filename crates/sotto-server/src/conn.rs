//! Connections: the accept loop behind `sotto serve`. At most `max_connections` are open at
//! once (the next one is answered 503 and closed), a client has `header_timeout` to send a
//! request's headers (hyper's timer, which also closes idle keep-alive connections), and
//! shutdown is graceful with a grace period.
//!
//! axum's own `serve` sets no connection limit and no timer, so a client that opens
//! connections and never finishes a request (slowloris) kept each one, and its descriptor,
//! forever.
//!
//! Must not: keep a connection without a timeout on what it waits for, or block the runtime.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::{ApiError, AppState};

/// How long a refused connection gets to read its 503 before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Refused connections being answered at once; beyond this, one is closed unanswered.
const REFUSING: usize = 64;

/// Serve until `shutdown` resolves; then stop accepting, give in-flight requests the grace
/// period, cancel what still runs, and return once every connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let settings = &state.0.settings;
    let open = Arc::new(Semaphore::new(settings.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(settings.header_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refuse(stream, &state, &refusing);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        let metrics = state.clone();
        metrics.0.metrics.connection_opened();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            metrics.0.metrics.connection_closed();
            drop(permit);
        });
    }
    drop(listener);
    state.0.stopping.store(true, Ordering::Relaxed);
    tracing::info!("shutting down: no new connections; waiting for requests in flight");
    let grace = settings.shutdown_grace;
    let closed = graceful.shutdown();
    tokio::pin!(closed);
    if tokio::time::timeout(grace, &mut closed).await.is_ok() {
        return Ok(());
    }
    tracing::warn!(grace_s = grace.as_secs_f64(), "requests still running after the grace period; cancelling");
    state.0.engine.close();
    state.0.engine.cancel_running();
    if tokio::time::timeout(Duration::from_secs(5), &mut closed).await.is_err() {
        tracing::warn!("connections still open 5 s after cancelling; closing them");
    }
    Ok(())
}

/// A failed `accept`: the client's trouble is skipped; the process's (out of descriptors) is
/// logged and waited out rather than retried in a spin.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Answer a connection over the limit with a 503 and close it. What the client sent is read
/// (for at most [`REFUSAL_LINGER`]) so that closing does not reset the connection before the
/// client has read the answer.
fn refuse(mut stream: TcpStream, state: &AppState, refusing: &Arc<Semaphore>) {
    state.0.metrics.connection_refused();
    let Ok(permit) = refusing.clone().try_acquire_owned() else {
        return;
    };
    let limit = state.0.settings.max_connections;
    let error = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "too_many_connections",
        format!("{limit} connections are open, the most this server keeps; retry later"),
    );
    let body = error.body().to_string();
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            stream.write_all(reply.as_bytes()).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        })
        .await;
        drop(permit);
    });
}
