//! The HTTP client of the benchmarks and the daemon tests: `ureq`, blocking, plain HTTP to the
//! daemon on a loopback address. Each request gets a connection of its own (no pool), as the
//! hand-written clients it replaced did, so that what the daemon counts and closes is the same;
//! a proxy named in the environment is not used; a status is an answer, never an error.
//!
//! Must not: send what a well-behaved client would not. Slow readers, half-sent requests and
//! disconnects (`soak.rs`, the server's hardening tests) write to a `TcpStream` themselves.

use std::net::SocketAddr;
use std::time::Duration;

/// A status and the body as text (invalid UTF-8 replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// A client of the daemon at one address.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    /// A client of `addr` whose requests fail after `timeout`, the answer's body included.
    pub fn new(addr: SocketAddr, timeout: Duration) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_idle_connections(0)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Client { agent, base: format!("http://{addr}") }
    }

    pub fn get(&self, path: &str) -> Result<Reply, ureq::Error> {
        read(self.agent.get(format!("{}{path}", self.base)).call()?)
    }

    /// `POST` of `body` as JSON (the bytes as given: the soak sends some that are not JSON).
    pub fn post(&self, path: &str, body: impl AsRef<[u8]>) -> Result<Reply, ureq::Error> {
        self.post_with(path, &[], body)
    }

    /// `post` with more headers.
    pub fn post_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl AsRef<[u8]>,
    ) -> Result<Reply, ureq::Error> {
        let mut request = self.agent.post(format!("{}{path}", self.base)).content_type("application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.send(body.as_ref())?)
    }
}

fn read(mut response: ureq::http::Response<ureq::Body>) -> Result<Reply, ureq::Error> {
    let status = response.status().as_u16();
    Ok(Reply { status, body: response.body_mut().read_to_string()? })
}
