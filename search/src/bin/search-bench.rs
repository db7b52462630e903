//! search-bench: index the synthetic catalog of `shared/bench-data/gen_events.py` and report
//! indexing throughput, index size and query latency (p50/p99) per query shape.
//!
//! usage: search-bench EVENTS.tsv VOCAB.txt [QUERIES_PER_SHAPE=200] [INDEX_DIR]
//! The result cache is disabled, so every query runs against the index.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use search::{EventDoc, SearchIndex, SearchOptions, SearchQuery, VenueDoc};

/// (name as in the TSV, latitude, longitude) of the 50 cities of gen_events.py.
const CITIES: [(&str, f64, f64); 50] = [
    ("new york", 40.7128, -74.0060),
    ("los angeles", 34.0522, -118.2437),
    ("chicago", 41.8781, -87.6298),
    ("houston", 29.7604, -95.3698),
    ("phoenix", 33.4484, -112.0740),
    ("philadelphia", 39.9526, -75.1652),
    ("san antonio", 29.4241, -98.4936),
    ("san diego", 32.7157, -117.1611),
    ("dallas", 32.7767, -96.7970),
    ("austin", 30.2672, -97.7431),
    ("jacksonville", 30.3322, -81.6557),
    ("san jose", 37.3382, -121.8863),
    ("fort worth", 32.7555, -97.3308),
    ("columbus", 39.9612, -82.9988),
    ("charlotte", 35.2271, -80.8431),
    ("indianapolis", 39.7684, -86.1581),
    ("san francisco", 37.7749, -122.4194),
    ("seattle", 47.6062, -122.3321),
    ("denver", 39.7392, -104.9903),
    ("washington", 38.9072, -77.0369),
    ("nashville", 36.1627, -86.7816),
    ("oklahoma city", 35.4676, -97.5164),
    ("el paso", 31.7619, -106.4850),
    ("boston", 42.3601, -71.0589),
    ("portland", 45.5152, -122.6784),
    ("las vegas", 36.1699, -115.1398),
    ("detroit", 42.3314, -83.0458),
    ("memphis", 35.1495, -90.0490),
    ("louisville", 38.2527, -85.7585),
    ("baltimore", 39.2904, -76.6122),
    ("milwaukee", 43.0389, -87.9065),
    ("albuquerque", 35.0844, -106.6504),
    ("tucson", 32.2226, -110.9747),
    ("fresno", 36.7378, -119.7871),
    ("sacramento", 38.5816, -121.4944),
    ("kansas city", 39.0997, -94.5786),
    ("mesa", 33.4152, -111.8315),
    ("atlanta", 33.7490, -84.3880),
    ("omaha", 41.2565, -95.9345),
    ("colorado springs", 38.8339, -104.8214),
    ("raleigh", 35.7796, -78.6382),
    ("miami", 25.7617, -80.1918),
    ("long beach", 33.7701, -118.1937),
    ("virginia beach", 36.8529, -75.9780),
    ("oakland", 37.8044, -122.2712),
    ("minneapolis", 44.9778, -93.2650),
    ("tulsa", 36.1540, -95.9928),
    ("tampa", 27.9506, -82.4572),
    ("arlington", 32.7357, -97.1081),
    ("new orleans", 29.9511, -90.0715),
];

const DAY_MS: u64 = 86_400_000;
/// 2026-01-01T00:00:00Z, the first slot of gen_events.py.
const START_MS: u64 = 1_767_225_600_000;
/// Events indexed per `apply` (one commit each).
const BATCH_EVENTS: usize = 100_000;

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// "YYYY-MM-DD HH:MM:SS+00" → ms since the epoch.
fn parse_ts(s: &str) -> Result<u64> {
    let n = |a: usize, b: usize| s.get(a..b).context("short timestamp")?.parse::<i64>().context("timestamp");
    let days = days_from_civil(n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let secs = days * 86_400 + n(11, 13)? * 3600 + n(14, 16)? * 60 + n(17, 19)?;
    Ok(u64::try_from(secs)? * 1000)
}

fn title(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn venues() -> Vec<VenueDoc> {
    CITIES
        .iter()
        .enumerate()
        .map(|(i, (city, lat, lon))| VenueDoc {
            id: format!("venue-{i:02}"),
            name: format!("{} Hall", title(city)),
            city: title(city),
            lat: *lat,
            lon: *lon,
        })
        .collect()
}

fn load(path: &str, venues: &[VenueDoc]) -> Result<Vec<EventDoc>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let mut out = Vec::with_capacity(1_000_000);
    for (n, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        let [id, name, city, typ, ts] = cols[..] else { bail!("line {}: expected 5 columns", n + 1) };
        let venue = CITIES
            .iter()
            .position(|(c, _, _)| *c == city)
            .map(|i| venues[i].clone())
            .with_context(|| format!("line {}: unknown city {city}", n + 1))?;
        let starts_at_ms = parse_ts(ts)?;
        out.push(EventDoc {
            id: id.to_string(),
            name: name.to_string(),
            description: String::new(),
            event_type: typ.to_string(),
            starts_at_ms,
            on_sale_at_ms: starts_at_ms.saturating_sub(90 * DAY_MS),
            cancelled: false,
            venue,
            performers: vec![],
        });
    }
    Ok(out)
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|rd| rd.filter_map(|e| e.ok()?.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

struct Shape {
    name: String,
    make: Box<dyn Fn(usize) -> SearchQuery>,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        bail!("usage: search-bench EVENTS.tsv VOCAB.txt [QUERIES_PER_SHAPE=200] [INDEX_DIR]");
    }
    let n_queries: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(200);
    let vocab: Vec<String> = std::fs::read_to_string(&args[2])?.lines().map(str::to_string).collect();
    let tmp = tempfile::tempdir()?;
    let dir: PathBuf = args.get(4).map(PathBuf::from).unwrap_or_else(|| tmp.path().join("index"));
    let venues = venues();

    let t = Instant::now();
    let events = load(&args[1], &venues)?;
    println!("loaded {} events from {} in {:.1} s", events.len(), args[1], t.elapsed().as_secs_f64());

    let options = SearchOptions { writer_memory_bytes: 256 << 20, cache_entries: 0 };
    let index = SearchIndex::open(&dir, options.clone())?;
    let total = events.len();
    let t = Instant::now();
    let mut batch_no = 0u64;
    let mut rest = events;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(BATCH_EVENTS));
        batch_no += 1;
        index.apply(batch_no, rest)?;
        rest = tail;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "indexed {total} events in {secs:.1} s = {:.0} docs/s ({batch_no} commits of {BATCH_EVENTS}); index on disk: {:.1} MiB ({} docs)",
        total as f64 / secs,
        dir_bytes(&dir) as f64 / (1 << 20) as f64,
        index.len()
    );
    let t = Instant::now();
    index.compact()?;
    println!(
        "compacted to one segment in {:.1} s; index on disk: {:.1} MiB",
        t.elapsed().as_secs_f64(),
        dir_bytes(&dir) as f64 / (1 << 20) as f64
    );
    drop(index);
    let t = Instant::now();
    let index = SearchIndex::open(&dir, options)?;
    println!(
        "reopened (with checksum validation) in {:.2} s; applied_index {}; index on disk: {:.1} MiB",
        t.elapsed().as_secs_f64(),
        index.applied_index(),
        dir_bytes(&dir) as f64 / (1 << 20) as f64
    );

    let word = |rank: usize| vocab[rank - 1].clone();
    let term_q = |first_rank: usize| {
        let words: Vec<String> = (first_rank..first_rank + 3).map(word).collect();
        Box::new(move |i: usize| SearchQuery { term: Some(words[i % 3].clone()), ..Default::default() })
            as Box<dyn Fn(usize) -> SearchQuery>
    };
    let term_city_30d = |first_rank: usize| {
        let words: Vec<String> = (first_rank..first_rank + 3).map(word).collect();
        Box::new(move |i: usize| {
            let from = START_MS + ((i as u64 * 37) % 700) * DAY_MS;
            SearchQuery {
                term: Some(words[i % 3].clone()),
                location: Some(CITIES[i % 50].0.to_string()),
                date_from_ms: Some(from),
                date_to_ms: Some(from + 30 * DAY_MS - 1),
                ..Default::default()
            }
        }) as Box<dyn Fn(usize) -> SearchQuery>
    };
    let mut shapes = vec![];
    for rank in [1, 10, 100, 1000, 4000] {
        shapes.push(Shape { name: format!("term, rank {rank}-{}", rank + 2), make: term_q(rank) });
    }
    for rank in [1, 10, 100, 1000, 4000] {
        shapes.push(Shape {
            name: format!("term rank {rank}-{} + city + 30 days", rank + 2),
            make: term_city_30d(rank),
        });
    }
    shapes.push(Shape {
        name: "typo + prefix: 'w1 w2[..4]' (ranks 50-52 / 200-202)".into(),
        make: Box::new({
            let (a, b): (Vec<String>, Vec<String>) =
                ((50..53).map(word).collect(), (200..203).map(word).collect());
            move |i| {
                let mut typo = a[i % 3].clone();
                typo.insert(1, 'x'); // one insertion: distance 1
                let prefix: String = b[i % 3].chars().take(4).collect();
                SearchQuery { term: Some(format!("{typo} {prefix}")), ..Default::default() }
            }
        }),
    });
    shapes.push(Shape {
        name: "geo 50 km around a city".into(),
        make: Box::new(|i| {
            let (_, lat, lon) = CITIES[i % 50];
            SearchQuery { lat: Some(lat), lon: Some(lon), radius_km: Some(50.0), ..Default::default() }
        }),
    });
    shapes.push(Shape {
        name: "geo 50 km + term rank 1-3".into(),
        make: Box::new({
            let words: Vec<String> = (1..4).map(word).collect();
            move |i| {
                let (_, lat, lon) = CITIES[i % 50];
                SearchQuery {
                    term: Some(words[i % 3].clone()),
                    lat: Some(lat),
                    lon: Some(lon),
                    radius_km: Some(50.0),
                    ..Default::default()
                }
            }
        }),
    });
    shapes.push(Shape {
        name: "no term: upcoming".into(),
        make: Box::new(|i| SearchQuery {
            now_ms: START_MS + (i as u64 * 3_600_000 * 61) % (700 * DAY_MS),
            ..Default::default()
        }),
    });
    shapes.push(Shape {
        name: "no term: type + city, page 3 (cursor)".into(),
        make: Box::new(|i| SearchQuery {
            location: Some(CITIES[i % 50].0.to_string()),
            event_type: Some(["concert", "opera", "sports"][i % 3].to_string()),
            date_from_ms: Some(START_MS + (i as u64 % 300) * DAY_MS),
            ..Default::default()
        }),
    });

    println!();
    println!("| shape ({n_queries} queries each, cache off) | results/page | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for shape in &shapes {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let mut results = 0usize;
        let paged = shape.name.contains("cursor");
        for i in 0..n_queries {
            let mut q = (shape.make)(i);
            if paged {
                // Walk to page 3; time only the third page.
                for _ in 0..2 {
                    let p = index.search(&q)?;
                    q.cursor = p.next_cursor;
                }
            }
            let t = Instant::now();
            let page = index.search(&q)?;
            h.record(t.elapsed().as_micros().max(1) as u64)?;
            results += page.results.len();
        }
        println!(
            "| {} | {:.1} | {:.2} | {:.2} | {:.2} |",
            shape.name,
            results as f64 / n_queries as f64,
            h.value_at_quantile(0.50) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0
        );
    }
    Ok(())
}
