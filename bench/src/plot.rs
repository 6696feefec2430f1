//! The latency-versus-throughput plot: for each target, p50 (solid) and p99 (dashed) latency
//! from the intended start time at each fixed rate, against the throughput reached.
//!
//! A store's curve stays flat while it keeps up and turns up sharply near its capacity; the
//! point where it turns is the throughput one can plan for at a given latency. Both axes use
//! log scales, since targets differ by orders of magnitude in both.
//!
//! Text needs a TrueType font: plotters' pure-Rust `ab_glyph` renderer is given the first
//! of [`FONT_CANDIDATES`] that exists (Debian's `fonts-dejavu-core`), or `$DIALKV_BENCH_FONT`.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use plotters::series::DashedLineSeries;
use plotters::style::FontStyle;

use crate::report::CurvePoint;

/// Fonts tried, in order, when `$DIALKV_BENCH_FONT` is unset.
pub const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// The font family name the plot's text uses.
const FAMILY: &str = "sans-serif";

/// Colours of successive targets.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Registers a font once per process; later calls return the first call's outcome.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let path = std::env::var("DIALKV_BENCH_FONT")
                .ok()
                .or_else(|| {
                    FONT_CANDIDATES
                        .iter()
                        .find(|p| Path::new(p).is_file())
                        .map(|p| p.to_string())
                })
                .ok_or_else(|| {
                    "no TrueType font found for the plot: install fonts-dejavu-core or set \
                     DIALKV_BENCH_FONT"
                        .to_string()
                })?;
            let bytes = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
            // plotters keeps fonts for the life of the process; the font is read once.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
                .map_err(|_| format!("{path} is not a usable TrueType font"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Draws `curves` (target name, points) to a PNG at `path`.
pub fn draw(path: &Path, title: &str, curves: &[(String, Vec<CurvePoint>)]) -> Result<()> {
    let points: Vec<&CurvePoint> = curves.iter().flat_map(|(_, c)| c).collect();
    if points.is_empty() {
        bail!("no latency-versus-throughput points to plot");
    }
    ensure_font()?;
    // Throughputs differ by orders of magnitude between targets: log scale on both axes.
    let x_max = points.iter().map(|p| p.ops_per_sec).fold(1.0, f64::max) * 1.5;
    let x_min = points
        .iter()
        .map(|p| p.ops_per_sec)
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min)
        .min(x_max / 10.0)
        / 1.5;
    let y_min = points
        .iter()
        .map(|p| p.p50_ms)
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min)
        .min(1.0)
        / 2.0;
    // A decade of headroom keeps the legend (upper left) clear of the points.
    let y_max = points.iter().map(|p| p.p99_ms).fold(1.0, f64::max) * 10.0;

    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    let draw_err = |e: DrawingAreaErrorKind<_>| anyhow!("drawing {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(draw_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 20))
        .margin(15)
        .margin_right(45)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("throughput reached (ops/s, log)")
        .y_desc("latency from intended start (ms, log)")
        .label_style((FAMILY, 14))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v}"))
        .draw()
        .map_err(draw_err)?;

    for (i, (name, curve)) in curves.iter().enumerate() {
        if curve.is_empty() {
            continue;
        }
        let color = PALETTE[i % PALETTE.len()];
        let p50: Vec<(f64, f64)> = curve.iter().map(|p| (p.ops_per_sec, p.p50_ms)).collect();
        let p99: Vec<(f64, f64)> = curve.iter().map(|p| (p.ops_per_sec, p.p99_ms)).collect();
        chart
            .draw_series(LineSeries::new(p50.clone(), color.stroke_width(2)))
            .map_err(draw_err)?
            .label(format!("{name} p50"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(p50.iter().map(|&xy| Circle::new(xy, 4, color.filled())))
            .map_err(draw_err)?;
        chart
            .draw_series(DashedLineSeries::new(
                p99.clone(),
                6,
                4,
                color.stroke_width(1),
            ))
            .map_err(draw_err)?
            .label(format!("{name} p99"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(1)));
        chart
            .draw_series(p99.iter().map(|&xy| TriangleMarker::new(xy, 5, color)))
            .map_err(draw_err)?;
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(draw_err)?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(ops: f64, p50: f64) -> CurvePoint {
        CurvePoint {
            target_ops_per_sec: ops,
            ops_per_sec: ops,
            p50_ms: p50,
            p99_ms: p50 * 3.0,
        }
    }

    #[test]
    fn draws_a_png() {
        if ensure_font().is_err() {
            eprintln!("no TrueType font here: plot test skipped");
            return;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("curve.png");
        let curves = vec![
            (
                "etcd".to_string(),
                vec![point(1000.0, 2.0), point(4000.0, 9.0)],
            ),
            (
                "redis".to_string(),
                vec![point(20_000.0, 0.3), point(60_000.0, 1.0)],
            ),
            ("empty".to_string(), Vec::new()),
        ];
        draw(&path, "test", &curves).expect("draws");
        let bytes = std::fs::read(&path).expect("written");
        assert!(bytes.starts_with(b"\x89PNG"));
    }

    #[test]
    fn refuses_an_empty_plot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = draw(&dir.path().join("x.png"), "t", &[]).expect_err("nothing to draw");
        assert!(err.to_string().contains("no latency"));
    }
}
