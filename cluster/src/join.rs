//! Joining a running cluster (`serve --join HTTP_ADDR`): ask a node to let this one in, before
//! this node's store starts, and learn the id it was given.
//!
//! The request is `POST /v1/cluster/nodes` with this node's addresses and its store id (the
//! data directory's, see `raft::Identity`), and no id when the operator gave none: the catalog
//! then picks a fresh one. The same store asking again gets the same id back, so a join that
//! crashed half-way is simply retried. Answers that will not change by retrying (a wrong
//! auth secret, a taken or removed id, a bad address) end the join with
//! [`Error::Refused`] at once; the others (no answer, no leader yet) are retried for
//! [`JOIN_ATTEMPTS_MAX`] seconds.

use std::time::Duration;

use tracing::{info, warn};

use crate::error::{Error, Result};
use tickets::NodeId;

/// How many times (one a second) a joining node asks before giving up.
pub const JOIN_ATTEMPTS_MAX: u32 = 120;
/// Pause between two join attempts.
const JOIN_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What a joining node says about itself.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    /// `None`: let the cluster pick a fresh id.
    pub id: Option<NodeId>,
    pub raft_addr: String,
    pub http_addr: String,
    pub store_id: u64,
}

/// Ask the node at `via` (an HTTP address, or an `https://` URL) to let this node in; answers
/// this node's id. `ca_pem`: a CA to trust beside the system's (the cluster CA, for a node
/// whose public port serves HTTPS with a certificate it signed).
pub async fn join_cluster(
    via: &str,
    token: &str,
    request: &JoinRequest,
    ca_pem: Option<&[u8]>,
) -> Result<NodeId> {
    let base = if via.starts_with("http") { via.to_string() } else { format!("http://{via}") };
    let mut http = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if let Some(pem) = ca_pem {
        let ca = reqwest::Certificate::from_pem(pem)
            .map_err(|e| Error::Refused(format!("the cluster CA is not a PEM certificate: {e}")))?;
        http = http.add_root_certificate(ca);
    }
    let http = http.build().map_err(|e| Error::Internal(format!("http client: {e}")))?;
    let mut body = serde_json::json!({
        "raft_addr": request.raft_addr,
        "http_addr": request.http_addr,
        "store_id": format!("{:016x}", request.store_id),
    });
    if let Some(id) = request.id {
        body["id"] = id.into();
    }
    for attempt in 1..=JOIN_ATTEMPTS_MAX {
        let sent = http.post(format!("{base}/v1/cluster/nodes")).bearer_auth(token).json(&body).send().await;
        match sent {
            Ok(r) if r.status().is_success() => {
                let answer: serde_json::Value =
                    r.json().await.map_err(|e| Error::Internal(format!("join answer: {e}")))?;
                let id = answer["id"]
                    .as_u64()
                    .ok_or_else(|| Error::Internal(format!("join answer without an id: {answer}")))?;
                info!(node = id, via = %base, "joined the cluster");
                return Ok(id);
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                if status.is_client_error() && status != reqwest::StatusCode::REQUEST_TIMEOUT {
                    return Err(Error::Refused(format!(
                        "the cluster at {base} refused this node's join ({status}): {text}"
                    )));
                }
                warn!(attempt, %status, answer = %text, "join not answered yet; retrying");
            }
            Err(e) => warn!(attempt, error = %e, via = %base, "join request failed; retrying"),
        }
        tokio::time::sleep(JOIN_RETRY_PAUSE).await;
    }
    Err(Error::Refused(format!(
        "no node at {base} let this node in after {JOIN_ATTEMPTS_MAX} attempts; check --join and that the cluster runs"
    )))
}
