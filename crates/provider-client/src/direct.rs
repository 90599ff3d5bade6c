//! HTTP/2 straight over the h2 crate, for a provider known to speak it: one
//! connection carries every call as its own stream, and a call is a stream
//! opened, its body sent and its answer read, in the caller's own task.
//!
//! Nothing else sits between the call and the frames. A general-purpose
//! client's layers (redirects, retries, proxies, a pool keyed by host, a URL
//! parsed again per answer) cost about a third of a call's CPU in a profile
//! of validation, for nothing this client uses: it refuses redirects,
//! retries by its own rules and talks to one host. hyper's HTTP/2 client,
//! the next layer down, still hands each request to the connection through
//! a channel and spawns a task per request to wait for its answer: 5% of
//! validation's CPU in the next profile, apart from the frames themselves.
//!
//! The connection is opened on first use and again after it closes (the
//! provider's GOAWAY, a reset, an I/O error): a call that finds it closed
//! opens the next, and the calls arriving meanwhile wait for that one rather
//! than each opening their own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use tokio::net::TcpStream;

use crate::error::Unavailable;

/// Bytes of answers the provider may send on one stream, and on the whole
/// connection, before this side has read them.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// An answer read to its end.
pub(crate) struct Received {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug)]
pub(crate) struct Connection {
    /// `host:port` to connect to.
    address: String,
    timeout: Duration,
    current: Mutex<Option<Open>>,
    /// Held while a connection is being opened, so only one is.
    opening: tokio::sync::Mutex<()>,
}

/// An open connection: its sender, and whether it has closed since.
#[derive(Debug, Clone)]
struct Open {
    sender: SendRequest<Bytes>,
    /// Set by the task driving the connection when it ends, and by a call
    /// that saw the connection fail.
    closed: Arc<AtomicBool>,
}

impl Open {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl Connection {
    /// A connection to `base`'s host, not yet opened. Cleartext only
    /// (prior knowledge): the caller sends `https` providers elsewhere.
    pub(crate) fn new(base: &Url, timeout: Duration) -> Option<Self> {
        if base.scheme() != "http" {
            return None;
        }
        let host = base.host_str()?;
        let port = base.port_or_known_default()?;
        // An IPv6 host comes bracketed, as an address wants it.
        let address = format!("{host}:{port}");
        Some(Self {
            address,
            timeout,
            current: Mutex::new(None),
            opening: tokio::sync::Mutex::new(()),
        })
    }

    /// The connection while it is open.
    fn open_now(&self) -> Option<Open> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|open| !open.is_closed())
            .cloned()
    }

    /// The open connection, opening one if there is none.
    async fn open(&self) -> Result<Open, Unavailable> {
        if let Some(open) = self.open_now() {
            return Ok(open);
        }
        let _opening = self.opening.lock().await;
        // Another call may have opened it while this one waited.
        if let Some(open) = self.open_now() {
            return Ok(open);
        }
        let connect = async {
            let stream = TcpStream::connect(&self.address).await?;
            stream.set_nodelay(true)?;
            // Receive windows of a few megabytes, as hyper's client opens
            // with: at HTTP/2's 64 KiB a few hundred answers in flight fill
            // the window, and the provider waits on this side's
            // WINDOW_UPDATEs (backlog throughput fell five-fold). Nothing
            // here takes a pushed stream.
            let (sender, connection) = h2::client::Builder::new()
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .enable_push(false)
                .handshake(stream)
                .await
                .map_err(std::io::Error::other)?;
            let closed = Arc::new(AtomicBool::new(false));
            let open = Open {
                sender,
                closed: closed.clone(),
            };
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "provider connection closed");
                }
                closed.store(true, Ordering::Release);
            });
            Ok::<_, std::io::Error>(open)
        };
        let open = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(open)) => open,
            Ok(Err(error)) => {
                return Err(Unavailable::Connection(format!(
                    "cannot connect to {}: {error}",
                    self.address
                )));
            }
            Err(_) => return Err(Unavailable::Timeout),
        };
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(open.clone());
        Ok(open)
    }

    /// Sends `head` and `body` and reads the answer to its end, within the
    /// timeout.
    pub(crate) async fn send(
        &self,
        head: http::Request<()>,
        body: Bytes,
    ) -> Result<Received, Unavailable> {
        let exchange = async {
            // The call's own handle on the connection: cloning one takes
            // the connection's lock, so it is cloned once per call.
            let Open { sender, closed } = self.open().await?;
            exchange(sender, head, body).await.map_err(|error| {
                // A stream the provider refused or reset leaves the
                // connection usable; anything else ends it, and the next
                // call opens another without waiting for its task to notice.
                if error.reason().is_none() || error.is_go_away() {
                    closed.store(true, Ordering::Release);
                }
                Unavailable::connection(&error)
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(Unavailable::Timeout))
    }
}

/// One stream: the request out, the whole answer back.
async fn exchange(
    sender: SendRequest<Bytes>,
    head: http::Request<()>,
    body: Bytes,
) -> Result<Received, h2::Error> {
    // Waits while the provider's limit of concurrent streams is reached.
    let mut sender = sender.ready().await?;
    let end_of_stream = body.is_empty();
    let (response, mut stream) = sender.send_request(head, end_of_stream)?;
    if !end_of_stream {
        // Buffered by h2 and sent as the provider's flow-control window allows.
        stream.send_data(body, true)?;
    }
    let (parts, mut answer) = response.await?.into_parts();
    let mut body = BytesMut::new();
    while let Some(chunk) = answer.data().await {
        let chunk = chunk?;
        // Read, so the provider may send as much again.
        answer.flow_control().release_capacity(chunk.len())?;
        if body.is_empty() && answer.is_end_stream() {
            // The whole answer in one frame (the usual case): no copy.
            return Ok(Received {
                status: parts.status,
                headers: parts.headers,
                body: chunk,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Received {
        status: parts.status,
        headers: parts.headers,
        body: body.freeze(),
    })
}
