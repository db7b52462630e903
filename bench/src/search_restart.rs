//! `--mode search-restart`: what a node's restart costs its search index at catalog scale,
//! in process (no nodes): a catalog of N events built by the catalog's own rules, indexed
//! and committed with its feed mark as a running node's feed would, then K events changed
//! "while the node was down"; then the index is reopened and brought up to date by the feed's
//! catch-up (re-index what changed since the mark) and, for comparison, by a full rebuild
//! (what every such restart did before). Also times decoding the catalog's snapshot, which a
//! restart pays before anything is served.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use search::{SearchIndex, SearchOptions, SearchQuery};
use store::feed::{changed_since, event_doc, feed_mark};
use tickets::catalog::{
    Catalog, CatalogCommand, EventPatch, EventSpec, GeoPoint, QueueSettings, SectionKind, SectionSpec,
    VenueSpec,
};

pub struct Options {
    pub events: usize,
    pub changed: usize,
    pub dir: std::path::PathBuf,
}

/// Words the synthetic event names are made of (deterministic: event i gets words by i).
const WORDS: [&str; 16] = [
    "summer",
    "night",
    "orchestra",
    "live",
    "tour",
    "acoustic",
    "festival",
    "jazz",
    "rock",
    "opera",
    "symphony",
    "comedy",
    "classic",
    "electric",
    "gala",
    "reunion",
];
const CITIES: usize = 50;

fn name(i: usize) -> String {
    format!("{} {} {} {i}", WORDS[i % 16], WORDS[(i / 16) % 16], WORDS[(i / 256) % 16])
}

fn spec(i: usize) -> EventSpec {
    EventSpec {
        name: name(i),
        description: String::new(),
        event_type: ["concert", "theatre", "sports", "comedy"][i % 4].into(),
        venue_id: format!("v{}", i % CITIES),
        performer_ids: Vec::new(),
        starts_at: 4_000_000_000_000 + (i as u64) * 1_800_000,
        on_sale_at: 0,
        sales_end: None,
        refund_until: None,
        waitlist_offer_seconds: None,
        prices: BTreeMap::from([("GA".into(), 5_000)]),
        currency: "USD".into(),
        per_user_limit: 8,
        hold_seconds: 600,
        queue: QueueSettings::default(),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

pub fn run(o: &Options) -> anyhow::Result<()> {
    anyhow::ensure!(o.events >= 1 && o.changed <= o.events, "--events ≥ 1 and --changed ≤ --events");
    // The catalog, as the catalog group applies it (time moves 1 ms per command).
    let started = Instant::now();
    let mut c = Catalog::default();
    let now = std::cell::Cell::new(1_000_000u64);
    let apply = |c: &mut Catalog, cmd: CatalogCommand| -> anyhow::Result<()> {
        now.set(now.get() + 1);
        c.apply(cmd, now.get()).map(|_| ()).map_err(|e| anyhow::anyhow!("{e:?}"))
    };
    for id in 1..=3 {
        let cmd = CatalogCommand::RegisterNode {
            id,
            raft_addr: format!("r{id}"),
            http_addr: format!("h{id}"),
            store_id: id,
        };
        apply(&mut c, cmd)?;
    }
    for v in 0..CITIES {
        let spec = VenueSpec {
            name: format!("Arena {v}"),
            city: format!("City {v}"),
            country: "US".into(),
            location: GeoPoint { lat: 30.0 + v as f64 * 0.3, lon: -120.0 + v as f64 * 1.0 },
            sections: vec![SectionSpec { name: "GA".into(), kind: SectionKind::General { capacity: 100 } }],
        };
        apply(&mut c, CatalogCommand::CreateVenue { id: format!("v{v}"), spec })?;
    }
    for i in 0..o.events {
        apply(&mut c, CatalogCommand::CreateEvent { id: format!("e{i:07}").into(), spec: spec(i) })?;
    }
    let built = started.elapsed();
    let snapshot = bincode::serde::encode_to_vec(&c, bincode::config::standard())?;
    let started = Instant::now();
    let (decoded, _): (Catalog, usize) =
        bincode::serde::decode_from_slice(&snapshot, bincode::config::standard())?;
    let decode = started.elapsed();
    drop(decoded);

    // The index a running node's feed keeps, with its mark; then it "stops".
    let dir = o.dir.join("search-restart-index");
    let _ = std::fs::remove_dir_all(&dir);
    let version = now.get();
    let started = Instant::now();
    {
        let index = SearchIndex::open(&dir, SearchOptions::default())?;
        let docs: Vec<_> = c.events.values().map(|e| event_doc(&c, e)).collect();
        index.rebuild_marked(version, Some(feed_mark(&c)), docs)?;
        index.compact()?;
    }
    let first_index = started.elapsed();

    // While it was down: K events renamed (half) or created (half).
    let renamed = o.changed / 2;
    for i in 0..renamed {
        let patch = EventPatch { name: Some(format!("renamed quokka {i}")), ..Default::default() };
        apply(
            &mut c,
            CatalogCommand::UpdateEvent {
                id: format!("e{:07}", i * (o.events / renamed.max(1))).into(),
                patch,
            },
        )?;
    }
    for i in 0..o.changed - renamed {
        let mut s = spec(o.events + i);
        s.name = format!("created marimba {i}");
        apply(&mut c, CatalogCommand::CreateEvent { id: format!("n{i:07}").into(), spec: s })?;
    }

    // The restart: open, then catch up from the mark.
    let started = Instant::now();
    let index = SearchIndex::open(&dir, SearchOptions::default())?;
    let opened = started.elapsed();
    let since = index.feed_mark().context("the index has no mark")?;
    let started = Instant::now();
    let docs = changed_since(&c, &since).context("names changed: the catch-up would rebuild")?;
    let scan = started.elapsed();
    let reindexed = docs.len();
    index.apply_marked(now.get(), Some(feed_mark(&c)), docs)?;
    let catch_up = started.elapsed();
    let up_to_date = opened + catch_up;
    let find = |term: &str| -> anyhow::Result<usize> {
        let q = SearchQuery { term: Some(term.into()), limit: 5, ..Default::default() };
        Ok(index.search(&q)?.results.len())
    };
    anyhow::ensure!(o.changed < 2 || find("quokka")? > 0, "a renamed event is not found after the catch-up");
    anyhow::ensure!(o.changed < 2 || find("marimba")? > 0, "a created event is not found after the catch-up");
    anyhow::ensure!(
        index.len() as usize == c.events.len(),
        "index has {} events, catalog {}",
        index.len(),
        c.events.len()
    );

    // For comparison: what a restart did before (a rebuild of everything, then compaction).
    let started = Instant::now();
    let docs: Vec<_> = c.events.values().map(|e| event_doc(&c, e)).collect();
    index.rebuild_marked(now.get(), Some(feed_mark(&c)), docs)?;
    index.compact()?;
    let rebuild = started.elapsed();
    drop(index);
    let _ = std::fs::remove_dir_all(&dir);

    println!("search after a restart, {} events, {} changed while down", o.events, o.changed);
    println!("| step | time |");
    println!("|---|---|");
    println!("| catalog built by its rules (setup) | {} |", secs(built));
    println!(
        "| catalog snapshot decoded ({:.1} MiB; a restart pays this first) | {} |",
        snapshot.len() as f64 / 1048576.0,
        secs(decode)
    );
    println!("| first index + compaction (setup) | {} |", secs(first_index));
    println!("| restart: index opened (checksums) | {} |", secs(opened));
    println!("| restart: changed events found (scan of {} events) | {} |", c.events.len(), secs(scan));
    println!("| restart: catch-up ({reindexed} re-indexed, one commit) | {} |", secs(catch_up));
    println!("| **restart: search up to date (open + catch-up)** | **{}** |", secs(up_to_date));
    println!("| before: full rebuild + compaction | {} |", secs(rebuild));
    Ok(())
}
