//! The Redis adapter: a hold is `SET seat holder NX PX 600000` — set only if absent, expiring
//! in 10 minutes. `OK` is a hold, nil is "taken". Whether it is durable depends on how the
//! server runs (`scripts/peers.sh`): `redis` has no persistence at all, `redis-aof` has
//! `appendonly yes` + `appendfsync always` (the AOF is written and fsynced before the answers
//! of one event-loop turn go out: writes that arrive together share one fsync).
//!
//! Each client has its own connection.

use anyhow::Context;
use redis::aio::MultiplexedConnection;

/// A hold's lifetime, as in boxoffice's default `hold_seconds`.
pub const HOLD_MS: u64 = 600_000;

pub struct Conn {
    con: MultiplexedConnection,
}

impl Conn {
    pub async fn connect(url: &str) -> anyhow::Result<Conn> {
        let client = redis::Client::open(url).with_context(|| format!("redis url {url}"))?;
        let con = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("connecting to Redis at {url}"))?;
        Ok(Conn { con })
    }

    pub async fn hold(&mut self, key: &str, holder: &str) -> anyhow::Result<bool> {
        let r: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(HOLD_MS)
            .query_async(&mut self.con)
            .await?;
        Ok(r.is_some())
    }

    /// Keys matching `prefix*` (`KEYS`: a one-off check at the end of a run, not timed).
    pub async fn count(&mut self, prefix: &str) -> anyhow::Result<u64> {
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut self.con).await?;
        Ok(keys.len() as u64)
    }
}
