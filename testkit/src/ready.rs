//! Waiting for a started node: poll its `/readyz` until it answers 200 (the node is part of a
//! formed cluster and reaches a majority), giving up early when its process ends and late when
//! the time is up, and saying which and what the node last answered.

use std::time::{Duration, Instant};

/// Pause between two polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long one `/readyz` request may take before it counts as no answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a node was not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// Its process ended first (the exit status, as the caller described it).
    Exited(String),
    /// Still not ready at the deadline; what `/readyz` last said.
    Late { after: Duration, last: String },
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Exited(status) => write!(f, "exited ({status}) before it was ready"),
            NotReady::Late { after, last } => write!(f, "not ready within {after:?} (/readyz last: {last})"),
        }
    }
}

impl std::error::Error for NotReady {}

/// Poll `GET {base}/readyz` with `http` until it answers 200, for at most `timeout`; how long
/// it took. `exited` is asked before every poll: `Some(status)` means the process is gone.
pub async fn wait_ready(
    http: &reqwest::Client,
    base: &str,
    timeout: Duration,
    mut exited: impl FnMut() -> Option<String>,
) -> Result<Duration, NotReady> {
    let start = Instant::now();
    let url = format!("{}/readyz", base.trim_end_matches('/'));
    loop {
        if let Some(status) = exited() {
            return Err(NotReady::Exited(status));
        }
        let last = match http.get(&url).timeout(REQUEST_TIMEOUT).send().await {
            Ok(r) if r.status().as_u16() == 200 => return Ok(start.elapsed()),
            Ok(r) => {
                let status = r.status().as_u16();
                format!("{status} {}", r.text().await.unwrap_or_default().trim())
            }
            Err(e) => e.to_string(),
        };
        if start.elapsed() >= timeout {
            return Err(NotReady::Late { after: timeout, last });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The last `lines` lines of the log at `path` (empty if it cannot be read).
pub fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-thread HTTP/1.0 server answering `status` to every request (its listener stays
    /// bound, so `:0` is safe here).
    fn answering(status: u16) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten().take(200) {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let body = if status == 200 { "ready" } else { "no majority" };
                let _ = write!(s, "HTTP/1.0 {status} X\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn ready_late_and_exited_are_told_apart() {
        let http = reqwest::Client::new();
        assert!(wait_ready(&http, &answering(200), Duration::from_secs(5), || None).await.is_ok());
        let late = wait_ready(&http, &answering(503), Duration::from_millis(200), || None).await;
        match late {
            Err(NotReady::Late { last, .. }) => assert_eq!(last, "503 no majority"),
            other => panic!("{other:?}"),
        }
        let gone =
            wait_ready(&http, &answering(503), Duration::from_secs(5), || Some("signal: 9".into())).await;
        assert_eq!(gone, Err(NotReady::Exited("signal: 9".into())));
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = std::env::temp_dir().join(format!("testkit-log-{}", std::process::id()));
        std::fs::write(&dir, "a\nb\nc\n").unwrap();
        assert_eq!(log_tail(&dir, 2), "b\nc");
        assert_eq!(log_tail(&dir, 9), "a\nb\nc");
        let _ = std::fs::remove_file(&dir);
        assert_eq!(log_tail(&dir, 2), "");
    }
}
