//! The PostgreSQL adapter: a hold is one conditional UPDATE of a pre-seeded tickets row,
//! committed with `synchronous_commit = on` (the WAL is flushed before the answer):
//!
//! `UPDATE tickets SET status='held', holder=$1, until=now()+interval '10 minutes'
//!  WHERE id=$2 AND status='available'` — one row updated is a hold, zero is "taken".
//!
//! Each client has its own connection and prepared statement. [`prepare_table`] recreates
//! the table with `seats` available rows before each run.

use anyhow::Context;
use tokio_postgres::{Client, NoTls, Statement};

const HOLD_SQL: &str =
    "UPDATE tickets SET status = 'held', holder = $1, until = now() + interval '10 minutes' \
                        WHERE id = $2 AND status = 'available'";

async fn connect_raw(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {url}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client.batch_execute("SET synchronous_commit = on").await?;
    Ok(client)
}

/// Drop and recreate `tickets` with rows 0..seats available.
pub async fn prepare_table(url: &str, seats: u64) -> anyhow::Result<()> {
    let client = connect_raw(url).await?;
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS tickets;
             CREATE TABLE tickets (id bigint PRIMARY KEY, status text NOT NULL, holder text, until timestamptz);
             INSERT INTO tickets (id, status) SELECT g, 'available' FROM generate_series(0, {}) g;",
            seats - 1
        ))
        .await
        .context("seeding the tickets table")?;
    client.batch_execute("VACUUM ANALYZE tickets").await.context("vacuuming the tickets table")?;
    Ok(())
}

pub struct Conn {
    client: Client,
    hold: Statement,
}

impl Conn {
    pub async fn connect(url: &str) -> anyhow::Result<Conn> {
        let client = connect_raw(url).await?;
        let hold = client.prepare(HOLD_SQL).await?;
        Ok(Conn { client, hold })
    }

    pub async fn hold(&mut self, seat: u64, holder: &str) -> anyhow::Result<bool> {
        let rows = self.client.execute(&self.hold, &[&holder, &(seat as i64)]).await?;
        Ok(rows == 1)
    }

    pub async fn held(&mut self) -> anyhow::Result<u64> {
        let row = self.client.query_one("SELECT count(*) FROM tickets WHERE status = 'held'", &[]).await?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}
