//! Test harness: real `boxoffice serve` processes on loopback with their own data
//! directories, and a small HTTP client. Every process is killed when its handle drops.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const SECRET: &str = "test-secret-0123456789abcdef";
/// How long a node may take to print its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_boxoffice"))
}

pub struct Node {
    pub child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    extra: Vec<(String, String)>,
}

impl Node {
    /// Start a node on a free loopback port with data in `data_dir`.
    pub fn start(data_dir: &Path) -> Node {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Node {
        let extra: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::spawn(data_dir, extra, "127.0.0.1:0")
    }

    fn spawn(data_dir: &Path, extra: Vec<(String, String)>, http: &str) -> Node {
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "--http", http, "--data-dir"])
            .arg(data_dir)
            .env("BOXOFFICE_AUTH_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn boxoffice");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line.strip_prefix("boxoffice listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let base = rx.recv_timeout(START_TIMEOUT).expect("node printed its address in time");
        Node { child: Some(child), base, data_dir: data_dir.to_path_buf(), extra }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// kill -9, then start again on the same address and data.
    pub fn restart(&mut self) {
        self.kill();
        let http = self.base.trim_start_matches("http://").to_string();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // The port may linger briefly; retry until bound.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Self::spawn(&self.data_dir, self.extra.clone(), &http)
            }));
            match result {
                Ok(node) => {
                    *self = node;
                    return;
                }
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe_sigterm(c.id());
        c.wait().expect("wait")
    }

    pub fn client(&self) -> Client {
        Client { base: self.base.clone(), http: reqwest::Client::new() }
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn token(user: &str, admin: bool) -> String {
    let out = Command::new(binary())
        .args(["token", "--user", user, "--ttl", "1h"])
        .args(if admin { vec!["--admin"] } else { vec![] })
        .env("BOXOFFICE_AUTH_SECRET", SECRET)
        .output()
        .expect("boxoffice token");
    assert!(out.status.success(), "token failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Client {
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.http.request(method.parse().unwrap(), format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.timeout(Duration::from_secs(30)).send().await.expect("request sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, body, headers }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send("GET", path, token, None, &[]).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.send("POST", path, Some(token), Some(body), &[]).await
    }
}

/// A small venue (section A: rows 1-2 of 10 seats; GA: 20) and an event there.
/// Returns the event id.
pub async fn small_event(c: &Client, hold_seconds: u64, per_user_limit: u32) -> String {
    let admin = token("admin", true);
    let venue = c
        .post("/v1/venues", &admin, json!({
            "name": "Test Hall", "city": "Springfield", "country": "US", "location": {"lat": 40.0, "lon": -75.0},
            "sections": [
                {"name": "A", "kind": "seated", "rows": [{"name": "1", "seats": 10}, {"name": "2", "seats": 10}]},
                {"name": "GA", "kind": "general", "capacity": 20}
            ]
        }))
        .await;
    assert_eq!(venue.status, 201, "{}", venue.body);
    let event = c
        .post(
            "/v1/events",
            &admin,
            json!({
                "name": "Test Night", "type": "concert", "venue_id": venue.body["id"],
                "starts_at": "2030-01-01T20:00:00Z", "prices": {"A": 5000, "GA": 2500}, "currency": "USD",
                "per_user_limit": per_user_limit, "hold_seconds": hold_seconds
            }),
        )
        .await;
    assert_eq!(event.status, 201, "{}", event.body);
    event.body["id"].as_str().unwrap().to_string()
}
