//! Servers the benchmarks run as processes of their own (`sotto serve`, the baseline's
//! llama-cpp-python server): a free loopback port, the wait until one answers, and SIGTERM.
//!
//! Must not: wait without a bound; leave a process behind ([`Server`] ends it when dropped).

use std::net::SocketAddr;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use crate::client::Client;

/// A loopback address with a port nobody holds now.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A server process, ended with SIGTERM when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `GET path` answers 200, or the process exits, or `limit` passes.
    pub fn wait_ready(&mut self, client: &Client, path: &str, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the server exited before it was ready: {status}");
            }
            if client.get(path).is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the server was not ready within {} s", limit.as_secs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the exit status and how long the exit took; `None` if it had already exited.
    pub fn terminate(&mut self) -> anyhow::Result<Option<(ExitStatus, Duration)>> {
        if self.child.try_wait()?.is_some() {
            return Ok(None);
        }
        let stop = Instant::now();
        // kill(1), so that this crate needs no unsafe code.
        std::process::Command::new("kill").args(["-TERM", &self.pid().to_string()]).status()?;
        let status = self.child.wait()?;
        Ok(Some((status, stop.elapsed())))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.terminate();
        }
    }
}
