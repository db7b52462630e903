//! The timeline picture of a run: each completed op a dot at (invoke time, latency, log
//! scale), green ok / orange fail / blue info, fault windows shaded with their kind written
//! on top.
//!
//! `timeline.png` is drawn with plotters (bitmap backend). Its text needs a TrueType font,
//! looked up on the system at run time ([`FONT_PATHS`], or the file named by
//! `BOXOFFICE_TIMELINE_FONT`); without one the PNG is still written, without any text, and
//! [`PngWritten::note`] says so. `timeline.svg` (hand-written, no font needed) is kept: it
//! costs nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::nemesis::{NemesisEvent, NemesisKind};
use crate::history::{Op, OpKind};

/// One completed op: invoke offset since the start, latency, how it ended.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Point {
    t_ms: u64,
    lat_ms: u64,
    kind: OpKind,
}

/// One fault window, offsets since the workload start. `end_ms` is `None` when the log
/// has no `end` for it (healed after the workload): drawn to the right edge.
#[derive(Clone, Debug, PartialEq)]
struct Window {
    start_ms: u64,
    end_ms: Option<u64>,
    kind: NemesisKind,
    nodes: Vec<u64>,
}

/// Pair every invoke with the completion of the same process. Invokes with no completion
/// become info points at `pending_lat_ms` (the op timeout) when it is given.
fn points(ops: &[Op], start_ms: u64, pending_lat_ms: Option<u64>) -> Vec<Point> {
    let mut invokes: BTreeMap<u64, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for op in ops {
        match op.kind {
            OpKind::Invoke => {
                if let (Some(t), Some(lat)) = (invokes.insert(op.process, op.time_ms), pending_lat_ms) {
                    out.push(Point { t_ms: t.saturating_sub(start_ms), lat_ms: lat, kind: OpKind::Info });
                }
            }
            kind => {
                if let Some(t) = invokes.remove(&op.process) {
                    let lat = op.latency_ms.unwrap_or_else(|| op.time_ms.saturating_sub(t));
                    out.push(Point { t_ms: t.saturating_sub(start_ms), lat_ms: lat, kind });
                }
            }
        }
    }
    if let Some(lat) = pending_lat_ms {
        for t in invokes.values() {
            out.push(Point { t_ms: t.saturating_sub(start_ms), lat_ms: lat, kind: OpKind::Info });
        }
    }
    out
}

/// Pair each `start` with the next `end` of the same kind (`skip`s are ignored).
fn windows(nemesis: &[NemesisEvent]) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    for e in nemesis {
        match e.phase.as_str() {
            "start" => {
                out.push(Window { start_ms: e.offset_ms, end_ms: None, kind: e.kind, nodes: e.nodes.clone() })
            }
            "end" => {
                if let Some(w) = out.iter_mut().find(|w| w.kind == e.kind && w.end_ms.is_none()) {
                    w.end_ms = Some(e.offset_ms.max(w.start_ms));
                }
            }
            _ => {}
        }
    }
    out
}

/// What the picture is of; everything optional.
#[derive(Clone, Debug, Default)]
pub struct TimelineInfo {
    /// The title line (see [`run_title`]); a generic one when empty.
    pub title: String,
    /// The client's op timeout: drawn as a dashed line, and where invokes that never
    /// completed are put (as info).
    pub op_timeout_ms: Option<u64>,
}

/// The title of a run's picture.
pub fn run_title(seed: u64, workload: &str, nemeses: &[NemesisKind], nodes: usize, time_s: u64) -> String {
    let n: Vec<String> = nemeses.iter().map(|k| kind_name(*k).to_string()).collect();
    let n = if n.is_empty() { "none".to_string() } else { n.join("+") };
    format!("boxoffice jepsen — seed {seed}, workload {workload}, nemesis {n}, {nodes} nodes, {time_s} s")
}

/// What [`write_png`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PngWritten {
    pub width: u32,
    pub height: u32,
    /// Dots drawn (completed ops, plus pending invokes when the timeout is known).
    pub points: usize,
    pub fault_windows: usize,
    /// The font the text was drawn with; `None`: no font found, the PNG has no text.
    pub font: Option<PathBuf>,
    /// Something worth a line in the run's notes (today: "no font").
    pub note: Option<String>,
}

pub const PNG_SIZE: (u32, u32) = (1400, 620);
/// The legend column, on the right.
const LEGEND_W: u32 = 190;

/// Common places of a sans-serif TrueType font (Debian/Ubuntu, Fedora, Arch, Alpine, macOS).
pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/ttf-dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
];

/// The family name the font is registered under with plotters.
const FAMILY: &str = "sans-serif";

/// Find and register a font once per process; `None` when there is none.
fn font() -> Option<&'static Path> {
    static FONT: OnceLock<Option<PathBuf>> = OnceLock::new();
    FONT.get_or_init(|| {
        let env = std::env::var_os("BOXOFFICE_TIMELINE_FONT").map(PathBuf::from);
        for p in env.into_iter().chain(FONT_PATHS.iter().map(PathBuf::from)) {
            let Ok(bytes) = std::fs::read(&p) else { continue };
            // plotters keeps the font for the life of the process: leak it, once.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok() {
                return Some(p);
            }
        }
        None
    })
    .as_deref()
}

fn kind_name(k: NemesisKind) -> &'static str {
    match k {
        NemesisKind::Kill => "kill",
        NemesisKind::Pause => "pause",
        NemesisKind::Partition => "partition",
        NemesisKind::Clock => "clock",
        NemesisKind::Membership => "membership",
        NemesisKind::Power => "power",
        NemesisKind::DiskFull => "disk full",
        NemesisKind::Corrupt => "corrupt",
    }
}

fn kind_color(k: NemesisKind) -> RGBColor {
    match k {
        NemesisKind::Kill => RGBColor(220, 40, 40),
        NemesisKind::Pause => RGBColor(200, 160, 0),
        NemesisKind::Partition => RGBColor(140, 60, 200),
        NemesisKind::Clock => RGBColor(0, 150, 170),
        NemesisKind::Membership => RGBColor(90, 90, 90),
        NemesisKind::Power => RGBColor(0, 0, 0),
        NemesisKind::DiskFull => RGBColor(160, 90, 40),
        NemesisKind::Corrupt => RGBColor(200, 0, 120),
    }
}

const OK_COLOR: RGBColor = RGBColor(30, 160, 50);
const FAIL_COLOR: RGBColor = RGBColor(240, 110, 0);
const INFO_COLOR: RGBColor = RGBColor(40, 80, 220);

/// Write `timeline.png`: x = seconds since the workload start, y = latency in ms (log
/// scale), one shaded band per fault window labelled with its kind and nodes, a legend,
/// axis labels and `info.title`. Never panics for want of a font: see [`PngWritten`].
/// `start_ms` is the wall clock (ms since the epoch) of the workload start, as for
/// [`write_svg`].
pub fn write_png(
    path: &Path,
    ops: &[Op],
    nemesis: &[NemesisEvent],
    start_ms: u64,
    info: &TimelineInfo,
) -> Result<PngWritten> {
    let font = font();
    render_png(path, ops, nemesis, start_ms, info, font.is_some())?;
    let pts = points(ops, start_ms, info.op_timeout_ms).len();
    Ok(PngWritten {
        width: PNG_SIZE.0,
        height: PNG_SIZE.1,
        points: pts,
        fault_windows: windows(nemesis).len(),
        font: font.map(Path::to_path_buf),
        note: font.is_none().then(|| {
            format!(
                "{}: drawn without text (no TrueType font found; install fonts-dejavu-core or set BOXOFFICE_TIMELINE_FONT)",
                path.display()
            )
        }),
    })
}

fn render_png(
    path: &Path,
    ops: &[Op],
    nemesis: &[NemesisEvent],
    start_ms: u64,
    info: &TimelineInfo,
    text: bool,
) -> Result<()> {
    let pts = points(ops, start_ms, info.op_timeout_ms);
    let wins = windows(nemesis);
    let end_ms = pts
        .iter()
        .map(|p| p.t_ms + p.lat_ms)
        .chain(nemesis.iter().map(|e| e.offset_ms))
        .max()
        .unwrap_or(1000)
        .max(1000);
    let x_max = end_ms as f64 / 1000.0 * 1.01;
    let lat_top = pts.iter().map(|p| p.lat_ms).chain(info.op_timeout_ms).max().unwrap_or(10).max(10);
    // Headroom above the slowest dot for the windows' labels.
    let (y_min, y_max) = (0.8f64, lat_top as f64 * 3.0);
    let y_of = |lat: u64| (lat as f64).clamp(1.0, y_max);

    let root = BitMapBackend::new(path, PNG_SIZE).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(e)?;
    let title = if info.title.is_empty() { "boxoffice jepsen timeline" } else { &info.title };
    let root = if text { root.titled(title, (FAMILY, 20)).map_err(e)? } else { root };
    // The legend gets a column of its own on the right, so it hides no dot.
    let (plot, legend) = root.split_horizontally(PNG_SIZE.0 - if text { LEGEND_W } else { 0 });
    let mut builder = ChartBuilder::on(&plot);
    builder.margin(12);
    if text {
        builder.x_label_area_size(45).y_label_area_size(70);
    }
    let mut chart = builder.build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale()).map_err(e)?;

    // Fault windows first, under the dots.
    for w in &wins {
        let x0 = w.start_ms as f64 / 1000.0;
        let x1 = w.end_ms.map(|t| t as f64 / 1000.0).unwrap_or(x_max).max(x0 + 0.05);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, y_min), (x1, y_max)],
                kind_color(w.kind).mix(0.15).filled(),
            )))
            .map_err(e)?;
    }

    let x_fmt = |v: &f64| if x_max >= 20.0 { format!("{v:.0}") } else { format!("{v:.1}") };
    let y_fmt = |v: &f64| if *v >= 1.0 { format!("{v:.0}") } else { format!("{v:.1}") };
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(RGBColor(235, 235, 235)).bold_line_style(RGBColor(210, 210, 210));
    if text {
        mesh.x_desc("seconds since the workload start (op invoke time)")
            .y_desc("latency, ms (log)")
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 14))
            .x_labels(15)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt);
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(e)?;
    if !text {
        // No labels to hang the grid on: one line per decade of latency, one per 10 s.
        let light = ShapeStyle::from(&RGBColor(215, 215, 215)).stroke_width(1);
        let mut d = 1.0;
        while d < y_max {
            chart.draw_series(std::iter::once(PathElement::new([(0.0, d), (x_max, d)], light))).map_err(e)?;
            d *= 10.0;
        }
        let mut t = 0.0;
        while t < x_max {
            chart
                .draw_series(std::iter::once(PathElement::new([(t, y_min), (t, y_max)], light)))
                .map_err(e)?;
            t += 10.0;
        }
    }

    let grey = RGBColor(120, 120, 120);
    if let Some(to) = info.op_timeout_ms {
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, to as f64), (x_max, to as f64)],
                6,
                4,
                ShapeStyle::from(&grey).stroke_width(1),
            ))
            .map_err(e)?;
    }

    let mut counts = Vec::new();
    for (kind, color, name, r) in [
        (OpKind::Ok, OK_COLOR, "ok", 2),
        (OpKind::Fail, FAIL_COLOR, "fail", 3),
        (OpKind::Info, INFO_COLOR, "info", 3),
    ] {
        let n = pts.iter().filter(|p| p.kind == kind).count();
        counts.push((color, name, n));
        let style = color.mix(0.65).filled();
        chart
            .draw_series(
                pts.iter()
                    .filter(|p| p.kind == kind)
                    .map(|p| Circle::new((p.t_ms as f64 / 1000.0, y_of(p.lat_ms)), r, style)),
            )
            .map_err(e)?;
    }

    if text {
        // The kind (and nodes) of each window along its top, staggered so neighbours
        // don't overlap.
        for (i, w) in wins.iter().enumerate() {
            let nodes: Vec<String> = w.nodes.iter().map(|n| format!("n{n}")).collect();
            let label = if nodes.is_empty() {
                kind_name(w.kind).to_string()
            } else {
                format!("{} {}", kind_name(w.kind), nodes.join(","))
            };
            let dy = 8 + 16 * (i as i32 % 2);
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((w.start_ms as f64 / 1000.0, y_max))
                        + Text::new(label, (3, dy), (FAMILY, 13).into_font().color(&kind_color(w.kind))),
                ))
                .map_err(e)?;
        }

        // The legend column.
        let font = (FAMILY, 13).into_font();
        let mut y = 24;
        let mut row =
            |area: &DrawingArea<BitMapBackend, _>, mark: &dyn Fn(i32, i32) -> Result<()>, s: String| {
                mark(12, y)?;
                area.draw(&Text::new(s, (34, y - 7), font.clone())).map_err(e)?;
                y += 22;
                Ok::<(), anyhow::Error>(())
            };
        for (color, name, n) in counts {
            row(
                &legend,
                &|x, y| legend.draw(&Circle::new((x + 8, y), 5, color.filled())).map_err(e),
                format!("{name} ({n})"),
            )?;
        }
        if let Some(to) = info.op_timeout_ms {
            row(
                &legend,
                &|x, y| {
                    legend.draw(&PathElement::new([(x, y), (x + 16, y)], grey.stroke_width(2))).map_err(e)
                },
                format!("op timeout ({to} ms)"),
            )?;
        }
        let mut kinds: Vec<NemesisKind> = Vec::new();
        for w in &wins {
            if !kinds.contains(&w.kind) {
                kinds.push(w.kind);
            }
        }
        for k in kinds {
            let n = wins.iter().filter(|w| w.kind == k).count();
            let c = kind_color(k);
            row(
                &legend,
                &|x, y| {
                    legend
                        .draw(&Rectangle::new([(x, y - 7), (x + 16, y + 7)], c.mix(0.3).filled()))
                        .map_err(e)
                },
                format!("fault: {} ({n})", kind_name(k)),
            )?;
        }
    }
    root.present().map_err(e)?;
    Ok(())
}

const W: f64 = 1200.0;
const H: f64 = 500.0;
const L: f64 = 60.0;
const R: f64 = 20.0;
const T: f64 = 30.0;
const B: f64 = 40.0;

/// The same picture as a hand-written SVG (no font needed).
pub fn write_svg(path: &Path, ops: &[Op], nemesis: &[NemesisEvent], start_ms: u64) -> Result<()> {
    let points = points(ops, start_ms, None);
    let end_ms =
        points.iter().map(|p| p.t_ms).chain(nemesis.iter().map(|e| e.offset_ms)).max().unwrap_or(1).max(1);
    let lat_max = points.iter().map(|p| p.lat_ms).max().unwrap_or(10).max(10) as f64;
    let x = |t: u64| L + (t as f64 / end_ms as f64) * (W - L - R);
    let y = |lat: u64| {
        let f = (lat.max(1) as f64).log10() / lat_max.log10();
        H - B - f * (H - T - B)
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"##
    );
    let _ = writeln!(s, r##"<rect width="{W}" height="{H}" fill="white"/>"##);
    // Fault windows.
    for w in windows(nemesis) {
        let (x0, x1) = (x(w.start_ms), x(w.end_ms.unwrap_or(end_ms)));
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
            w.kind,
            w.nodes
        );
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
    for p in &points {
        let color = match p.kind {
            OpKind::Ok => "#2a2",
            OpKind::Fail => "#e90",
            _ => "#d22",
        };
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="1.8" fill="{color}" fill-opacity="0.7"/>"##,
            x(p.t_ms),
            y(p.lat_ms)
        );
    }
    s.push_str("</svg>\n");
    std::fs::write(path, s)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpFn;

    const START: u64 = 1_700_000_000_000;

    fn op(index: u64, process: u64, kind: OpKind, time_ms: u64) -> Op {
        serde_json::from_value(serde_json::json!({
            "index": index, "process": process, "node": 1 + process % 3,
            "kind": kind, "f": OpFn::Reserve, "ticket": format!("t{}", process % 5),
            "time_ms": START + time_ms,
        }))
        .unwrap()
    }

    fn nev(offset_ms: u64, phase: &str, kind: NemesisKind, nodes: Vec<u64>) -> NemesisEvent {
        NemesisEvent {
            time_ms: START + offset_ms,
            offset_ms,
            phase: phase.into(),
            kind,
            detail: String::new(),
            nodes,
            dropped: None,
        }
    }

    /// 40 s of 6 clients; slow and failing during the faults, a timeout now and then.
    fn synthetic() -> (Vec<Op>, Vec<NemesisEvent>) {
        let mut ops = Vec::new();
        let mut idx = 0;
        let mut x: u64 = 12345;
        for p in 0..6u64 {
            let mut t = p * 37;
            while t < 40_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = x >> 33;
                let in_fault = (8_000..14_000).contains(&t) || (22_000..30_000).contains(&t);
                let (kind, lat) = match (in_fault, r % 20) {
                    (true, 0..=3) => (OpKind::Info, 3_000),
                    (true, 4..=9) => (OpKind::Fail, 20 + r % 400),
                    (false, 0) => (OpKind::Fail, 2 + r % 30),
                    _ => (OpKind::Ok, 1 + r % if in_fault { 800 } else { 40 }),
                };
                ops.push(op(idx, p, OpKind::Invoke, t));
                ops.push(op(idx + 1, p, kind, t + lat));
                idx += 2;
                t += lat + 20 + r % 100;
            }
        }
        ops.sort_by_key(|o| o.time_ms);
        for (i, o) in ops.iter_mut().enumerate() {
            o.index = i as u64;
        }
        let nem = vec![
            nev(8_000, "start", NemesisKind::Kill, vec![2]),
            nev(14_000, "end", NemesisKind::Kill, vec![2]),
            nev(22_000, "start", NemesisKind::Partition, vec![1, 3]),
            nev(30_000, "end", NemesisKind::Partition, vec![1, 3]),
            nev(35_000, "start", NemesisKind::Pause, vec![1]),
        ];
        (ops, nem)
    }

    /// PNG magic, then the IHDR chunk: width and height, big-endian.
    fn png_size(bytes: &[u8]) -> (u32, u32) {
        assert!(bytes.len() > 24, "PNG too short: {} bytes", bytes.len());
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "no PNG magic");
        assert_eq!(&bytes[12..16], b"IHDR");
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        (be(&bytes[16..20]), be(&bytes[20..24]))
    }

    fn tmp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("boxoffice-timeline-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn pairs_points_and_windows() {
        let ops = vec![
            op(0, 1, OpKind::Invoke, 100),
            op(1, 2, OpKind::Invoke, 150),
            op(2, 1, OpKind::Ok, 130),
            op(3, 1, OpKind::Invoke, 200),
            op(4, 1, OpKind::Fail, 260),
        ];
        let p = points(&ops, START, None);
        assert_eq!(
            p,
            vec![
                Point { t_ms: 100, lat_ms: 30, kind: OpKind::Ok },
                Point { t_ms: 200, lat_ms: 60, kind: OpKind::Fail }
            ]
        );
        // Process 2 never completed: an info dot at the timeout when it is known.
        let p = points(&ops, START, Some(3000));
        assert_eq!(p.len(), 3);
        assert_eq!(p[2], Point { t_ms: 150, lat_ms: 3000, kind: OpKind::Info });

        let (_, nem) = synthetic();
        let w = windows(&nem);
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].start_ms, w[0].end_ms, w[0].kind), (8_000, Some(14_000), NemesisKind::Kill));
        assert_eq!(w[2].end_ms, None);
    }

    #[test]
    fn png_with_text_if_a_font_is_installed() {
        let (ops, nem) = synthetic();
        let dir = tmp_dir("font");
        let path = dir.join("timeline.png");
        let info = TimelineInfo {
            title: run_title(42, "contention", &[NemesisKind::Kill, NemesisKind::Partition], 3, 40),
            op_timeout_ms: Some(3_000),
        };
        let w = write_png(&path, &ops, &nem, START, &info).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(png_size(&bytes), PNG_SIZE);
        assert_eq!((w.width, w.height), PNG_SIZE);
        assert_eq!(w.fault_windows, 3);
        assert_eq!(w.points, ops.len() / 2);
        assert_eq!(w.font.is_none(), w.note.is_some());
        if std::env::var_os("BOXOFFICE_KEEP_TIMELINE").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn png_without_a_font_has_no_text_and_does_not_fail() {
        let (ops, nem) = synthetic();
        let dir = tmp_dir("nofont");
        let path = dir.join("timeline.png");
        render_png(&path, &ops, &nem, START, &TimelineInfo::default(), false).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(png_size(&bytes), PNG_SIZE);
        if std::env::var_os("BOXOFFICE_KEEP_TIMELINE").is_some() {
            std::fs::copy(&path, dir.join("kept.png")).unwrap();
            return;
        }
        // Empty inputs too.
        render_png(&path, &[], &[], START, &TimelineInfo::default(), false).unwrap();
        assert_eq!(png_size(&std::fs::read(&path).unwrap()), PNG_SIZE);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn svg_still_written() {
        let (ops, nem) = synthetic();
        let dir = tmp_dir("svg");
        let path = dir.join("timeline.svg");
        write_svg(&path, &ops, &nem, START).unwrap();
        let s = std::fs::read_to_string(&path).unwrap();
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
