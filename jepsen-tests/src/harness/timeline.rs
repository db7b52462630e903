//! The timeline picture as SVG (hand-written; no plotting crate available offline): each
//! completed op a dot at (invoke time, latency, log scale), green ok / orange fail / red
//! info, fault windows shaded with their kind written on top.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::nemesis::NemesisEvent;
use crate::history::{Op, OpKind};

const W: f64 = 1200.0;
const H: f64 = 500.0;
const L: f64 = 60.0;
const R: f64 = 20.0;
const T: f64 = 30.0;
const B: f64 = 40.0;

pub fn write_svg(path: &Path, ops: &[Op], nemesis: &[NemesisEvent], start_ms: u64) -> Result<()> {
    let mut invokes: BTreeMap<u64, u64> = BTreeMap::new();
    let mut points = Vec::new();
    for op in ops {
        match op.kind {
            OpKind::Invoke => {
                invokes.insert(op.process, op.time_ms);
            }
            k => {
                if let Some(t) = invokes.remove(&op.process) {
                    points.push((t.saturating_sub(start_ms), op.time_ms.saturating_sub(t).max(1), k));
                }
            }
        }
    }
    let end_ms =
        points.iter().map(|p| p.0).chain(nemesis.iter().map(|e| e.offset_ms)).max().unwrap_or(1).max(1);
    let lat_max = points.iter().map(|p| p.1).max().unwrap_or(10).max(10) as f64;
    let x = |t: u64| L + (t as f64 / end_ms as f64) * (W - L - R);
    let y = |lat: u64| {
        let f = (lat as f64).log10() / lat_max.log10();
        H - B - f * (H - T - B)
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"##
    );
    let _ = writeln!(s, r##"<rect width="{W}" height="{H}" fill="white"/>"##);
    // Fault windows.
    let mut open: Option<&NemesisEvent> = None;
    for e in nemesis {
        match e.phase.as_str() {
            "start" => open = Some(e),
            "end" => {
                if let Some(st) = open.take() {
                    let (x0, x1) = (x(st.offset_ms), x(e.offset_ms));
                    let _ = writeln!(
                        s,
                        r##"<rect x="{x0:.1}" y="{T}" width="{:.1}" height="{:.1}" fill="#888" fill-opacity="0.18"/>"##,
                        (x1 - x0).max(1.0),
                        H - T - B
                    );
                    let _ = writeln!(
                        s,
                        r##"<text x="{:.1}" y="{:.1}">{:?} {:?}</text>"##,
                        x0 + 2.0,
                        T - 4.0,
                        st.kind,
                        st.nodes
                    );
                }
            }
            _ => {}
        }
    }
    // Axes.
    let _ = writeln!(
        s,
        r##"<line x1="{L}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"##,
        H - B,
        W - R,
        H - B
    );
    let _ = writeln!(s, r##"<line x1="{L}" y1="{T}" x2="{L}" y2="{:.1}" stroke="black"/>"##, H - B);
    let mut lat = 1u64;
    while (lat as f64) <= lat_max {
        let _ = writeln!(s, r##"<text x="4" y="{:.1}">{lat} ms</text>"##, y(lat) + 4.0);
        let _ = writeln!(
            s,
            r##"<line x1="{L}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#ddd"/>"##,
            y(lat),
            W - R
        );
        lat *= 10;
    }
    let step = ((end_ms / 10_000).max(1)) * 1000;
    let mut t = 0;
    while t <= end_ms {
        let _ = writeln!(s, r##"<text x="{:.1}" y="{:.1}">{} s</text>"##, x(t) - 8.0, H - B + 16.0, t / 1000);
        t += step;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}">invoke time (s) — latency (log) — green ok, orange fail, red info; grey: faults</text>"##,
        L,
        H - 8.0
    );
    for (t, lat, k) in &points {
        let color = match k {
            OpKind::Ok => "#2a2",
            OpKind::Fail => "#e90",
            _ => "#d22",
        };
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="1.8" fill="{color}" fill-opacity="0.7"/>"##,
            x(*t),
            y(*lat)
        );
    }
    s.push_str("</svg>\n");
    std::fs::write(path, s)?;
    Ok(())
}
