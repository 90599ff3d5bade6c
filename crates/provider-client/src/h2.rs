//! HTTP/2 straight over hyper, for a provider known to speak it: one
//! connection carries every call as its own stream, and a call is a request
//! on that connection, with none of a general-purpose client's layers
//! (redirects, retries, proxies, a pool keyed by host, a URL parsed again
//! per answer). Those layers cost about a third of a call's CPU in a
//! profile of validation, for nothing this client uses: it refuses
//! redirects, retries by its own rules and talks to one host.
//!
//! The connection is opened on first use and again after it closes (the
//! provider's GOAWAY, a reset): a call that finds it closed opens the next,
//! and the calls arriving meanwhile wait for that one rather than each
//! opening their own.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use tokio::net::TcpStream;

use crate::error::Unavailable;

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
    current: Mutex<Option<SendRequest<Full<Bytes>>>>,
    /// Held while a connection is being opened, so only one is.
    opening: tokio::sync::Mutex<()>,
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

    /// The connection's sender while it is open.
    fn open_sender(&self) -> Option<SendRequest<Full<Bytes>>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|sender| !sender.is_closed())
            .cloned()
    }

    /// The open connection's sender, opening one if there is none.
    async fn sender(&self) -> Result<SendRequest<Full<Bytes>>, Unavailable> {
        if let Some(sender) = self.open_sender() {
            return Ok(sender);
        }
        let _opening = self.opening.lock().await;
        // Another call may have opened it while this one waited.
        if let Some(sender) = self.open_sender() {
            return Ok(sender);
        }
        let connect = async {
            let stream = TcpStream::connect(&self.address).await?;
            stream.set_nodelay(true)?;
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .handshake(TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "provider connection closed");
                }
            });
            Ok::<_, std::io::Error>(sender)
        };
        let sender = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(sender)) => sender,
            Ok(Err(error)) => {
                return Err(Unavailable::Connection(format!(
                    "cannot connect to {}: {error}",
                    self.address
                )));
            }
            Err(_) => return Err(Unavailable::Timeout),
        };
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender.clone());
        Ok(sender)
    }

    /// Sends `request` and reads its answer to the end, within the timeout.
    pub(crate) async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<Received, Unavailable> {
        let exchange = async {
            let mut sender = self.sender().await?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|error| Unavailable::connection(&error))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|error| Unavailable::connection(&error))?
                .to_bytes();
            Ok(Received {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(Unavailable::Timeout))
    }
}
