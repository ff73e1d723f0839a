//! The listener: plain TCP or TLS (optionally mTLS), a bounded number of
//! connections, a deadline for the request headers (and the handshake), and
//! a cap on their size, so a slow or hostile client costs a connection
//! slot for a bounded time and nothing else.

use std::future::Future as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Request headers larger than this are refused (431).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long open connections may finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(5);

pub struct Listen {
    /// TLS or not is decided per connection: a reload may change it.
    pub access: Arc<super::access::Access>,
    pub read_header_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `app` until `shutdown`, then lets open connections finish for a
/// few seconds. Every connection task belongs to this function.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    listen: Listen,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(listen.max_connections.max(1)));
    let header_timeout = listen.read_header_timeout;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait, don't spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("connection limit reached; closing a new connection");
            drop(stream);
            continue;
        };
        let (app, acceptor, shutdown) = (app.clone(), listen.access.tls(), shutdown.clone());
        tracker.spawn(async move {
            let _slot = slot;
            // hyper's header deadline starts with the first byte; a client
            // that sends nothing, or stops, is closed by this one.
            let stream = Idle::new(stream, header_timeout);
            match acceptor {
                None => connection(stream, app, header_timeout, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => connection(tls, app, header_timeout, shutdown).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    tracker.close();
    if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
        tracing::warn!("open connections did not finish within {DRAIN:?}");
    }
}

async fn connection<S>(io: S, app: Router, header_timeout: Duration, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    tokio::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => {
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, conn).await;
        }
    }
}

/// How long an established connection may go without traffic (between
/// keep-alive requests, or while a slow handler works).
const IDLE: Duration = Duration::from_secs(60);

/// A stream that fails a read or write that has waited too long since the
/// connection's last progress in either direction: the header deadline
/// until the first byte arrives (hyper's own deadline only starts then),
/// [`IDLE`] after.
struct Idle<S> {
    inner: S,
    after_first_byte: Duration,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<S> Idle<S> {
    fn new(inner: S, first_byte: Duration) -> Idle<S> {
        Idle {
            inner,
            after_first_byte: IDLE.max(first_byte),
            deadline: Box::pin(tokio::time::sleep(first_byte)),
        }
    }

    fn progress(&mut self) {
        let next = tokio::time::Instant::now() + self.after_first_byte;
        self.deadline.as_mut().reset(next);
    }

    /// A write that went through is progress; one still pending fails once
    /// the deadline passed.
    fn written(
        &mut self,
        cx: &mut std::task::Context<'_>,
        polled: std::task::Poll<std::io::Result<usize>>,
    ) -> std::task::Poll<std::io::Result<usize>> {
        match polled {
            std::task::Poll::Ready(r) => {
                self.progress();
                std::task::Poll::Ready(r)
            }
            std::task::Poll::Pending => self.expired(cx),
        }
    }

    /// While the operation is pending: an error once the deadline passed.
    fn expired<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "idle connection",
            ))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut this.inner).poll_read(cx, buf) {
            std::task::Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.progress();
                }
                std::task::Poll::Ready(r)
            }
            std::task::Poll::Pending => this.expired(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_write(cx, data);
        this.written(cx, polled)
    }

    // Without these, hyper sees a stream that cannot write vectored and
    // copies every body into its own buffer first: a second copy of a
    // 17 MB /metrics answer.
    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.written(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hyper copies every body into its own buffer when the stream cannot
    /// write vectored: the deadline wrapper must not hide that it can.
    #[tokio::test]
    async fn the_idle_wrapper_keeps_vectored_writes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(client.is_write_vectored());
        let wrapped = Idle::new(client, Duration::from_secs(1));
        assert!(wrapped.is_write_vectored());
    }
}
