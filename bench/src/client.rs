//! The HTTP side of the load generator: one shared `reqwest` client, JSON requests with a
//! bearer token, and how an answer is named in the "errors by code" table.
//!
//! Owns: [`Http`] (the client plus the node base URLs it spreads clients over), [`post`],
//! [`get`], and [`outcome_name`] (`"409 ticket_unavailable"`, `"transport"`, ...).

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

/// How long one request may take before it counts as a `timeout` error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per node: one per client is enough.
pub const IDLE_CONNECTIONS_MAX: usize = 1_024;

/// One answer: its status and its JSON body (`Null` when the body is not JSON).
pub type Answer = (u16, Value);

pub fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(IDLE_CONNECTIONS_MAX)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")
}

pub(crate) async fn post(
    http: &reqwest::Client,
    url: String,
    token: &str,
    body: Value,
) -> anyhow::Result<Answer> {
    let r = http.post(url).bearer_auth(token).json(&body).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// A GET whose body is text (e.g. `/metrics`).
pub(crate) async fn get_text(http: &reqwest::Client, url: String) -> anyhow::Result<String> {
    Ok(http.get(url).send().await?.text().await?)
}

pub(crate) async fn get(http: &reqwest::Client, url: String) -> anyhow::Result<Answer> {
    let r = http.get(url).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// The key under which a failed request is counted: `"<status> <code>"` for a problem+json
/// answer, `"timeout"` or `"transport"` when no answer came.
pub fn outcome_name(result: &anyhow::Result<Answer>) -> String {
    match result {
        Ok((status, body)) => match body["code"].as_str() {
            Some(code) => format!("{status} {code}"),
            None => status.to_string(),
        },
        Err(e) => match e.downcast_ref::<reqwest::Error>() {
            Some(r) if r.is_timeout() => "timeout".into(),
            _ => "transport".into(),
        },
    }
}
