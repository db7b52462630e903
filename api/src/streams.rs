//! Bounds on long-lived streams (SSE): at most [`STREAMS_PER_NODE_MAX`] open on a node
//! (one more is 503 `unavailable`) and [`STREAMS_PER_CLIENT_MAX`] per client address (one
//! more is 429 `too_many_streams`). A [`StreamPermit`] holds a place until it is dropped,
//! which happens when the stream ends or the client goes away.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use crate::error::ApiError;

/// Open streams one node serves; past it new streams get 503.
pub const STREAMS_PER_NODE_MAX: usize = 10_000;
/// Open streams one client address may hold; past it new streams get 429.
pub const STREAMS_PER_CLIENT_MAX: usize = 32;

#[derive(Default)]
pub struct StreamLimits {
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

pub struct StreamPermit {
    limits: Arc<StreamLimits>,
    client: IpAddr,
}

impl StreamLimits {
    pub fn acquire(self: &Arc<Self>, client: IpAddr) -> Result<StreamPermit, ApiError> {
        let mut open = self.open.lock().expect("stream limits lock");
        if open.0 >= STREAMS_PER_NODE_MAX {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Unavailable",
                format!("this node serves {STREAMS_PER_NODE_MAX} streams already; try another node or later"),
            );
            e.set_retry_after(5);
            return Err(e);
        }
        let mine = open.1.entry(client).or_insert(0);
        if *mine >= STREAMS_PER_CLIENT_MAX {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                "Too many streams",
                format!("at most {STREAMS_PER_CLIENT_MAX} open streams per client"),
            ));
        }
        *mine += 1;
        open.0 += 1;
        metrics::gauge!("boxoffice_streams_open").set(open.0 as f64);
        Ok(StreamPermit { limits: self.clone(), client })
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().expect("stream limits lock");
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.client);
            }
        }
        metrics::gauge!("boxoffice_streams_open").set(open.0 as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_cap_and_release() {
        let limits = Arc::new(StreamLimits::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let permits: Vec<_> = (0..STREAMS_PER_CLIENT_MAX).map(|_| limits.acquire(ip).unwrap()).collect();
        assert_eq!(limits.acquire(ip).err().unwrap().parts().status, StatusCode::TOO_MANY_REQUESTS);
        assert!(limits.acquire("10.0.0.1".parse().unwrap()).is_ok(), "others are not affected");
        drop(permits);
        assert!(limits.acquire(ip).is_ok());
    }
}
