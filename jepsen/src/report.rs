//! The report a person reads after a run: `index.html` with the verdicts and their witnesses,
//! a timeline of every operation per process with the fault periods shaded and the witness
//! highlighted, and two plots over time with the faults marked: latency (`latency.svg`) and
//! throughput (`throughput.svg`), drawn with plotters.
//!
//! Everything is on the history's clock (nanoseconds since the recorder started); the fault
//! periods come from `nemesis.jsonl`, which is stamped with the same clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use dialkv_consistency::history::{EventType, History, OpKind};
use dialkv_consistency::verdict::Verdict;
use plotters::prelude::*;

use crate::runner::{NemesisRecord, RunConfig};
use crate::workload::CheckResult;

/// A fault period: `(start_ns, end_ns, label)`.
pub type FaultPeriod = (u64, u64, String);

/// Pairs each fault in the nemesis log with the heal that ended it.
pub fn fault_periods(log: &[NemesisRecord], end_ns: u64) -> Vec<FaultPeriod> {
    let mut periods = Vec::new();
    let mut open: Option<&NemesisRecord> = None;
    for r in log {
        if r.heal {
            if let Some(f) = open.take() {
                periods.push((f.start_ns, r.end_ns, f.action.clone()));
            }
        } else {
            if let Some(f) = open.take() {
                periods.push((f.start_ns, r.start_ns, f.action.clone()));
            }
            open = Some(r);
        }
    }
    if let Some(f) = open {
        periods.push((f.start_ns, end_ns, f.action.clone()));
    }
    periods
}

/// Writes `index.html`, `latency.svg` and `throughput.svg` into `dir`.
pub fn write(
    dir: &Path,
    cfg: &RunConfig,
    history: &History,
    nemesis: &[NemesisRecord],
    checks: &[CheckResult],
    verdict: &Verdict,
) -> anyhow::Result<()> {
    let end_ns = history
        .events()
        .iter()
        .map(|e| e.time_ns)
        .max()
        .unwrap_or(1)
        .max(1);
    let faults = fault_periods(nemesis, end_ns);
    let samples = latencies(history);
    let plots_ok = match (
        latency_plot(&dir.join("latency.svg"), &samples, &faults, end_ns),
        throughput_plot(&dir.join("throughput.svg"), history, &faults, end_ns),
    ) {
        (Ok(()), Ok(())) => String::new(),
        (a, b) => format!(
            "<p class=warn>plots could not be drawn: {}</p>",
            esc(&format!("{:?} {:?}", a.err(), b.err()))
        ),
    };
    let html = page(
        cfg, history, &faults, checks, verdict, end_ns, &plots_ok, nemesis,
    );
    let path = dir.join("index.html");
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))
}

/// One completed operation: when it was invoked (s), its latency (ms) and how it ended.
struct Sample {
    at_s: f64,
    latency_ms: f64,
    kind: EventType,
}

fn latencies(history: &History) -> Vec<Sample> {
    let mut open: HashMap<u64, u64> = HashMap::new();
    let mut out = Vec::new();
    for e in history.events() {
        match e.event_type {
            EventType::Invoke => {
                open.insert(e.process, e.time_ns);
            }
            kind => {
                if let Some(t0) = open.remove(&e.process) {
                    out.push(Sample {
                        at_s: t0 as f64 / 1e9,
                        latency_ms: (e.time_ns.saturating_sub(t0)) as f64 / 1e6,
                        kind,
                    });
                }
            }
        }
    }
    out
}

fn kind_color(kind: EventType) -> RGBColor {
    match kind {
        EventType::Ok => RGBColor(56, 142, 60),
        EventType::Fail => RGBColor(239, 108, 0),
        EventType::Info | EventType::Invoke => RGBColor(117, 117, 117),
    }
}

/// TrueType fonts tried, in order, for the plots' text (Debian's `fonts-dejavu-core` first).
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Gives plotters a font for "sans-serif", once per process: without one, laying out any
/// text fails and a plot comes out blank.
fn ensure_font() -> anyhow::Result<()> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let path = FONTS
                .iter()
                .find(|p| Path::new(p).is_file())
                .ok_or("no TrueType font for the plots: install fonts-dejavu-core")?;
            let bytes = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
            // plotters keeps registered fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
                .map_err(|_| format!("{path} is not a usable TrueType font"))
        })
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

fn latency_plot(
    path: &Path,
    samples: &[Sample],
    faults: &[FaultPeriod],
    end_ns: u64,
) -> anyhow::Result<()> {
    ensure_font()?;
    let root = SVGBackend::new(path, (1100, 380)).into_drawing_area();
    root.fill(&WHITE)?;
    let t_max = end_ns as f64 / 1e9;
    let l_max = samples.iter().map(|s| s.latency_ms).fold(1.0f64, f64::max) * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "latency by invocation time (faults shaded)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..t_max, 0f64..l_max)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("latency (ms)")
        .draw()?;
    chart.draw_series(faults.iter().map(|(s, e, _)| {
        Rectangle::new(
            [(*s as f64 / 1e9, 0.0), (*e as f64 / 1e9, l_max)],
            RGBColor(244, 67, 54).mix(0.12).filled(),
        )
    }))?;
    for kind in [EventType::Ok, EventType::Fail, EventType::Info] {
        let color = kind_color(kind);
        chart
            .draw_series(
                samples
                    .iter()
                    .filter(|s| s.kind == kind)
                    .map(|s| Circle::new((s.at_s, s.latency_ms), 2, color.filled())),
            )?
            .label(format!("{kind:?}").to_lowercase())
            .legend(move |(x, y)| Circle::new((x, y), 3, color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn throughput_plot(
    path: &Path,
    history: &History,
    faults: &[FaultPeriod],
    end_ns: u64,
) -> anyhow::Result<()> {
    let seconds = (end_ns / 1_000_000_000 + 1) as usize;
    let mut buckets: Vec<(EventType, Vec<u32>)> = [EventType::Ok, EventType::Fail, EventType::Info]
        .into_iter()
        .map(|k| (k, vec![0; seconds]))
        .collect();
    for e in history.events() {
        if let Some((_, b)) = buckets.iter_mut().find(|(k, _)| *k == e.event_type) {
            let i = ((e.time_ns / 1_000_000_000) as usize).min(seconds - 1);
            b[i] += 1;
        }
    }
    let y_max = buckets
        .iter()
        .flat_map(|(_, v)| v.iter())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    ensure_font()?;
    let root = SVGBackend::new(path, (1100, 320)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("completions per second (faults shaded)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..seconds as f64, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("ops/s")
        .draw()?;
    chart.draw_series(faults.iter().map(|(s, e, _)| {
        Rectangle::new(
            [(*s as f64 / 1e9, 0.0), (*e as f64 / 1e9, y_max)],
            RGBColor(244, 67, 54).mix(0.12).filled(),
        )
    }))?;
    for (kind, counts) in &buckets {
        let color = kind_color(*kind);
        chart
            .draw_series(LineSeries::new(
                counts
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (i as f64 + 0.5, f64::from(*c))),
                color.stroke_width(2),
            ))?
            .label(format!("{kind:?}").to_lowercase())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[allow(clippy::too_many_arguments)]
fn page(
    cfg: &RunConfig,
    history: &History,
    faults: &[FaultPeriod],
    checks: &[CheckResult],
    verdict: &Verdict,
    end_ns: u64,
    plot_note: &str,
    nemesis: &[NemesisRecord],
) -> String {
    let mut h = String::new();
    let (badge, color) = match verdict {
        Verdict::Valid => ("VALID", "#2e7d32"),
        Verdict::Invalid { .. } => ("INVALID", "#c62828"),
        Verdict::Unknown { .. } => ("UNKNOWN", "#f9a825"),
    };
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=utf-8><title>dialkv-jepsen: {w} {l}</title>\
         <style>body{{font-family:sans-serif;margin:20px}} .badge{{color:white;background:{color};\
         padding:4px 10px;border-radius:4px}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;\
         padding:3px 8px;text-align:left;vertical-align:top}} pre{{background:#f5f5f5;padding:8px;overflow-x:auto}}\
         .warn{{color:#c62828}}</style></head><body>\
         <h1>dialkv-jepsen: {w} at {l} <span class=badge>{badge}</span></h1>",
        w = cfg.workload,
        l = cfg.level,
    );
    let nemesis_names: Vec<&str> = cfg.nemesis.iter().map(|k| k.name()).collect();
    let _ = write!(
        h,
        "<p>{nodes} node(s), protocol primary-backup, nemesis {nem}, {time:.0} s, concurrency {c}, \
         seed <b>{seed}</b>{split}{args}. Replay with the same <code>--seed</code> for the same \
         operations and faults.</p>",
        nodes = cfg.nodes,
        nem = if nemesis_names.is_empty() {
            "none".to_string()
        } else {
            nemesis_names.join(",")
        },
        time = cfg.time.as_secs_f64(),
        c = cfg.concurrency,
        seed = cfg.seed,
        split = if cfg.split_brain {
            ", <b>split brain (self-test: every node its own cluster)</b>"
        } else {
            ""
        },
        args = if cfg.server_args.is_empty() {
            String::new()
        } else {
            format!(
                ", server args <code>{}</code>",
                esc(&cfg.server_args.join(" "))
            )
        },
    );
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for op in history.ops() {
        *kinds
            .entry(match op.kind {
                OpKind::Ok => "ok",
                OpKind::Fail => "fail",
                OpKind::Info => "info",
            })
            .or_default() += 1;
    }
    let _ = write!(
        h,
        "<p>{} operations: {}. Files: <a href=history.jsonl>history.jsonl</a>, \
         <a href=verdict.json>verdict.json</a>, <a href=schedule.json>schedule.json</a>, \
         <a href=nemesis.jsonl>nemesis.jsonl</a>, node logs:",
        history.ops().len(),
        kinds
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for id in 1..=cfg.nodes {
        let _ = write!(h, " <a href=nodes/n{id}.log>n{id}</a>");
    }
    h.push_str("</p>");

    h.push_str("<h2>Checks</h2><table><tr><th>checker</th><th>level</th><th>verdict</th></tr>");
    for c in checks {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            esc(&c.checker),
            esc(&c.level),
            esc(&c.verdict.to_string())
        );
    }
    h.push_str("</table>");

    let witness: BTreeSet<u64> = checks
        .iter()
        .flat_map(|c| c.verdict.witness().iter().map(|w| w.index))
        .collect();
    h.push_str(
        "<h2>Timeline</h2><p>One row per process; a bar from invocation to completion \
         (<span style='color:#388e3c'>ok</span>, <span style='color:#ef6c00'>fail</span>, \
         <span style='color:#757575'>info</span>, open to the end); fault periods shaded red; \
         the witness outlined in red. Hover for details.</p>",
    );
    h.push_str(&timeline(history, faults, &witness, end_ns));
    h.push_str("<h2>Latency and throughput</h2>");
    h.push_str(plot_note);
    h.push_str("<p><img src=latency.svg alt='latency plot'></p><p><img src=throughput.svg alt='throughput plot'></p>");
    h.push_str("<h2>Nemesis</h2><table><tr><th>at (s)</th><th>action</th><th>result</th></tr>");
    for r in nemesis {
        let _ = write!(
            h,
            "<tr><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
            r.start_ns as f64 / 1e9,
            esc(&r.action),
            esc(&r.result)
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

/// An inline SVG: one row per process, operations as bars, faults shaded, witness outlined.
fn timeline(
    history: &History,
    faults: &[FaultPeriod],
    witness: &BTreeSet<u64>,
    end_ns: u64,
) -> String {
    const WIDTH: f64 = 1300.0;
    const LEFT: f64 = 50.0;
    const ROW: f64 = 12.0;
    const TOP: f64 = 20.0;
    let processes: BTreeSet<u64> = history.ops().iter().map(|o| o.process).collect();
    let row_of: HashMap<u64, usize> = processes.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let height = TOP + ROW * processes.len() as f64 + 10.0;
    let x = |ns: u64| LEFT + (ns as f64 / end_ns as f64) * (WIDTH - LEFT - 10.0);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' \
         style='border:1px solid #ddd;font-size:9px'>"
    );
    for (a, b, label) in faults {
        let _ = write!(
            s,
            "<rect x='{:.1}' y='0' width='{:.1}' height='{height}' fill='#f44336' fill-opacity='0.12'>\
             <title>{}</title></rect><text x='{:.1}' y='10' fill='#c62828'>{}</text>",
            x(*a),
            (x(*b) - x(*a)).max(1.0),
            esc(label),
            x(*a) + 2.0,
            esc(label)
        );
    }
    let secs = end_ns / 1_000_000_000;
    let step = (secs / 20).max(1);
    for t in (0..=secs).step_by(step as usize) {
        let px = x(t * 1_000_000_000);
        let _ = write!(
            s,
            "<line x1='{px:.1}' y1='{TOP}' x2='{px:.1}' y2='{height}' stroke='#eee'/>\
             <text x='{px:.1}' y='{:.1}' fill='#999'>{t}s</text>",
            TOP - 1.0
        );
    }
    for (p, row) in &row_of {
        let _ = write!(
            s,
            "<text x='2' y='{:.1}' fill='#555'>p{p}</text>",
            TOP + ROW * (*row as f64) + 9.0
        );
    }
    for op in history.ops() {
        let row = row_of.get(&op.process).copied().unwrap_or(0);
        let x1 = x(op.invoke_ns);
        let x2 = x(op.complete_ns.unwrap_or(end_ns));
        let color = match op.kind {
            OpKind::Ok => "#388e3c",
            OpKind::Fail => "#ef6c00",
            OpKind::Info => "#9e9e9e",
        };
        let stroke = if witness.contains(&op.index) {
            " stroke='#d50000' stroke-width='2.5'"
        } else {
            ""
        };
        let _ = write!(
            s,
            "<rect x='{x1:.1}' y='{:.1}' width='{:.1}' height='{:.1}' fill='{color}'{stroke}>\
             <title>{}</title></rect>",
            TOP + ROW * row as f64 + 1.0,
            (x2 - x1).max(1.5),
            ROW - 3.0,
            esc(&op.to_string())
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(start: u64, end: u64, heal: bool, action: &str) -> NemesisRecord {
        NemesisRecord {
            start_ns: start,
            end_ns: end,
            action: action.into(),
            heal,
            result: String::new(),
        }
    }

    #[test]
    fn pairs_faults_with_heals() {
        let log = vec![
            rec(10, 11, false, "kill n1"),
            rec(20, 25, true, "restart"),
            rec(30, 31, false, "pause n1"),
            rec(40, 41, true, "resume"),
            rec(50, 51, false, "partition"),
        ];
        assert_eq!(
            fault_periods(&log, 99),
            vec![
                (10, 25, "kill n1".to_string()),
                (30, 41, "pause n1".to_string()),
                (50, 99, "partition".to_string()),
            ]
        );
    }

    #[test]
    fn escapes_html() {
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
