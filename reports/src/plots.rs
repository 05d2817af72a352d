//! The report's plots, drawn with plotters as SVG: latency of every operation over time (one
//! plot per operation kind, coloured by outcome), latency quantiles over time, and throughput
//! over time; each with the fault intervals shaded and labelled.
//!
//! Plots are bounded whatever the history's length: latency points are downsampled per series
//! ([`crate::downsample`]); quantiles and throughput are computed per time bucket, at most
//! [`MAX_BUCKETS`] of them.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::digest::{Digest, OpRecord, Outcome, TimeAxis};
use crate::downsample::downsample;
use crate::faults::FaultInterval;
use crate::ReportError;

/// Most `ok` points one latency plot draws.
pub const MAX_OK_POINTS: usize = 2_000;
/// Most `fail` points, and most `info` points, one latency plot draws: they are rarer and
/// matter more, so nearly all are kept.
pub const MAX_FAIL_POINTS: usize = 1_000;
/// Most time buckets of the quantile and throughput plots.
pub const MAX_BUCKETS: usize = 120;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 300;

/// Outcome colours, shared with the timeline's script and the page's CSS.
pub const OK_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
pub const FAIL_COLOR: RGBColor = RGBColor(0xd6, 0x27, 0x28);
pub const INFO_COLOR: RGBColor = RGBColor(0xf0, 0x8c, 0x00);

fn outcome_color(outcome: Outcome) -> RGBColor {
    match outcome {
        Outcome::Ok => OK_COLOR,
        Outcome::Fail => FAIL_COLOR,
        Outcome::Info | Outcome::Open => INFO_COLOR,
    }
}

/// The colour of a fault kind's band; the timeline's script uses the same table.
pub fn fault_color(kind: &str) -> RGBColor {
    match kind {
        "kill" | "crash" => RGBColor(0xe6, 0x49, 0x80),
        "pause" => RGBColor(0xf5, 0x9f, 0x00),
        "partition" => RGBColor(0x84, 0x5e, 0xf7),
        k if k.contains("clock") || matches!(k, "bump" | "strobe" | "skew") => {
            RGBColor(0x15, 0xaa, 0xbf)
        }
        "loss" | "impair" | "latency" => RGBColor(0x37, 0xb2, 0x4d),
        _ => RGBColor(0x86, 0x8e, 0x96),
    }
}

/// The plots of one history, as SVG documents.
#[derive(Debug, Clone, Default)]
pub struct Plots {
    /// One latency plot per operation kind: (f, svg).
    pub latency: Vec<(String, String)>,
    pub quantiles: Option<String>,
    pub throughput: Option<String>,
    /// Why some plot could not be drawn (no times, no completed operations).
    pub notes: Vec<String>,
}

fn plot_error(e: impl std::fmt::Display) -> ReportError {
    ReportError::Plot(e.to_string())
}

/// Every plot of a digest.
pub fn plots(digest: &Digest, faults: &[FaultInterval]) -> Result<Plots, ReportError> {
    let mut plots = Plots::default();
    if digest.axis == TimeAxis::Position {
        plots.notes.push(
            "the history has no times (an imported history), so latency and throughput cannot \
             be plotted; the timeline below orders operations by their position in the file"
                .to_string(),
        );
        return Ok(plots);
    }
    if !digest.ops.iter().any(|op| op.end.is_some()) {
        plots
            .notes
            .push("no operation completed, so there is nothing to plot".to_string());
        return Ok(plots);
    }
    let x_max = seconds(digest.end).max(1e-3);
    for (f_id, f) in digest.fs.iter().enumerate() {
        let ops: Vec<&OpRecord> = digest
            .ops
            .iter()
            .filter(|op| op.f as usize == f_id && op.end.is_some())
            .collect();
        if ops.is_empty() {
            continue;
        }
        plots
            .latency
            .push((f.clone(), latency_svg(f, &ops, faults, x_max)?));
    }
    let buckets = Buckets::new(digest.end);
    plots.quantiles = Some(quantiles_svg(digest, &buckets, faults, x_max)?);
    plots.throughput = Some(throughput_svg(digest, &buckets, faults, x_max)?);
    Ok(plots)
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn latency_ms(op: &OpRecord) -> Option<f64> {
    // A latency of 0 ns cannot sit on a log scale; a microsecond is below anything recorded.
    op.latency().map(|ns| (ns as f64 / 1e6).max(1e-3))
}

/// Fault bands over the whole height, each labelled at the top (labels of overlapping faults
/// are staggered so they stay readable).
fn draw_faults<Y>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, Y>>,
    faults: &[FaultInterval],
    x_max: f64,
    (y_low, y_high): (Y::ValueType, Y::ValueType),
) -> Result<(), ReportError>
where
    Y: Ranged,
    Y::ValueType: Clone + 'static,
{
    for (i, fault) in faults.iter().enumerate() {
        let color = fault_color(&fault.kind);
        let x0 = seconds(fault.start);
        let x1 = fault.end.map_or(x_max, seconds).max(x0);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, y_low.clone()), (x1, y_high.clone())],
                color.mix(0.16).filled(),
            )))
            .map_err(plot_error)?;
        let row = (i % 3) as i32;
        let label = crate::escape::truncate(&fault.label, 28);
        // A label near the right edge is written leftwards from the band's start, so it is
        // not cut off (about 7 pixels per character at this size).
        let dx = if x0 > 0.85 * x_max {
            -3 - 7 * label.chars().count() as i32
        } else {
            3
        };
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((x0, y_high.clone()))
                    + Text::new(
                        label,
                        (dx, 3 + 13 * row),
                        ("sans-serif", 12).into_font().color(&color.mix(0.95)),
                    ),
            ))
            .map_err(plot_error)?;
    }
    Ok(())
}

fn svg_document(
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), ReportError>,
) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn latency_svg(
    f: &str,
    ops: &[&OpRecord],
    faults: &[FaultInterval],
    x_max: f64,
) -> Result<String, ReportError> {
    let latencies: Vec<f64> = ops.iter().filter_map(|op| latency_ms(op)).collect();
    let (y_low, y_high) = log_range(
        latencies.iter().copied().fold(f64::INFINITY, f64::min),
        latencies.iter().copied().fold(0.0, f64::max),
    );
    svg_document(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(format!("latency of {f}"), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_max, (y_low..y_high).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("latency (ms)")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_error)?;
        draw_faults(&mut chart, faults, x_max, (y_low, y_high))?;
        for (outcome, cap) in [
            (Outcome::Ok, MAX_OK_POINTS),
            (Outcome::Fail, MAX_FAIL_POINTS),
            (Outcome::Info, MAX_FAIL_POINTS),
        ] {
            let points: Vec<(f64, f64)> = ops
                .iter()
                .filter(|op| op.outcome == outcome)
                .filter_map(|op| Some((seconds(op.start), latency_ms(op)?)))
                .collect();
            if points.is_empty() {
                continue;
            }
            let kept = downsample(&points, cap);
            let color = outcome_color(outcome);
            let shown = if kept.len() < points.len() {
                format!(
                    "{} ({} of {} shown)",
                    outcome.as_str(),
                    kept.len(),
                    points.len()
                )
            } else {
                format!("{} ({})", outcome.as_str(), points.len())
            };
            chart
                .draw_series(
                    kept.into_iter()
                        .map(|i| Circle::new(points[i], 2, color.mix(0.7).filled())),
                )
                .map_err(plot_error)?
                .label(shown)
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })
}

/// The top part of every plot kept free of data, for the legend and the fault labels: a
/// legend over the data would hide the slowest operations, the ones that matter most.
pub const HEADROOM: f64 = 0.3;

/// A log-scale range from `low` to `high` (both positive) with a margin below and
/// [`HEADROOM`] of the height free above.
pub fn log_range(low: f64, high: f64) -> (f64, f64) {
    let low = low / 1.5;
    let decades = (high / low).log10().max(1.0);
    (
        low,
        high * 10f64.powf(decades * HEADROOM / (1.0 - HEADROOM)),
    )
}

/// Equal time buckets over a history, at most [`MAX_BUCKETS`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Buckets {
    pub width_ns: u64,
    pub count: usize,
}

impl Buckets {
    /// Buckets of a round width (1, 2 or 5 times a power of ten, at least 1 ms) covering
    /// `0..=end_ns`.
    pub fn new(end_ns: u64) -> Buckets {
        let wanted = end_ns / MAX_BUCKETS as u64 + 1;
        let mut width_ns = 1_000_000;
        'search: loop {
            for step in [1, 2, 5] {
                if width_ns * step >= wanted {
                    width_ns *= step;
                    break 'search;
                }
            }
            width_ns *= 10;
        }
        let count = (end_ns / width_ns + 1) as usize;
        debug_assert!(count <= MAX_BUCKETS + 1);
        Buckets { width_ns, count }
    }

    pub fn of(&self, t_ns: u64) -> usize {
        ((t_ns / self.width_ns) as usize).min(self.count - 1)
    }

    /// The middle of bucket `i`, in seconds.
    pub fn middle_s(&self, i: usize) -> f64 {
        seconds(self.width_ns) * (i as f64 + 0.5)
    }
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "a quantile of nothing");
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn quantiles_svg(
    digest: &Digest,
    buckets: &Buckets,
    faults: &[FaultInterval],
    x_max: f64,
) -> Result<String, ReportError> {
    let mut per_bucket: Vec<Vec<f64>> = vec![Vec::new(); buckets.count];
    for op in &digest.ops {
        if let (Some(end), Some(latency)) = (op.end, latency_ms(op)) {
            per_bucket[buckets.of(end)].push(latency);
        }
    }
    for latencies in &mut per_bucket {
        latencies.sort_by(f64::total_cmp);
    }
    let all = per_bucket.iter().flatten().copied();
    let (y_low, y_high) = log_range(
        all.clone().fold(f64::INFINITY, f64::min),
        all.fold(0.0, f64::max),
    );
    let lines: [(&str, f64, RGBColor); 4] = [
        ("p50", 0.5, RGBColor(0x1f, 0x77, 0xb4)),
        ("p95", 0.95, RGBColor(0x2c, 0xa0, 0x2c)),
        ("p99", 0.99, RGBColor(0xf0, 0x8c, 0x00)),
        ("max", 1.0, RGBColor(0xd6, 0x27, 0x28)),
    ];
    svg_document(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "latency quantiles per {} ms (all operations)",
                    buckets.width_ns / 1_000_000
                ),
                ("sans-serif", 16),
            )
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_max, (y_low..y_high).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("latency (ms)")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_error)?;
        draw_faults(&mut chart, faults, x_max, (y_low, y_high))?;
        for (name, q, color) in lines {
            let points: Vec<(f64, f64)> = per_bucket
                .iter()
                .enumerate()
                .filter(|(_, l)| !l.is_empty())
                .map(|(i, l)| (buckets.middle_s(i), quantile(l, q)))
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(2))
                .map_err(plot_error)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })
}

fn throughput_svg(
    digest: &Digest,
    buckets: &Buckets,
    faults: &[FaultInterval],
    x_max: f64,
) -> Result<String, ReportError> {
    let outcomes = [Outcome::Ok, Outcome::Fail, Outcome::Info];
    let mut counts = vec![[0u64; 3]; buckets.count];
    for op in &digest.ops {
        if let Some(end) = op.end {
            let column = outcomes.iter().position(|&o| o == op.outcome).unwrap_or(2);
            counts[buckets.of(end)][column] += 1;
        }
    }
    let per_second = 1e9 / buckets.width_ns as f64;
    let y_high = counts
        .iter()
        .flat_map(|c| c.iter())
        .copied()
        .max()
        .unwrap_or(0) as f64
        * per_second
        / (1.0 - HEADROOM)
        + 1.0;
    svg_document(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "throughput (completions per second, {} ms buckets)",
                    buckets.width_ns / 1_000_000
                ),
                ("sans-serif", 16),
            )
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_max, 0f64..y_high)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("ops/s")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_error)?;
        draw_faults(&mut chart, faults, x_max, (0.0, y_high))?;
        for (column, outcome) in outcomes.iter().enumerate() {
            let points: Vec<(f64, f64)> = counts
                .iter()
                .enumerate()
                .map(|(i, c)| (buckets.middle_s(i), c[column] as f64 * per_second))
                .collect();
            if points.iter().all(|p| p.1 == 0.0) {
                continue;
            }
            let color = outcome_color(*outcome);
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(plot_error)?
                .label(outcome.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::NemesisEvent;
    use crate::faults::fault_intervals;
    use faultline_core::{Op, OpType};
    use serde_json::json;

    #[test]
    fn buckets_are_round_and_bounded() {
        let b = Buckets::new(10_000_000_000);
        assert_eq!(b.width_ns, 100_000_000);
        assert!(b.count <= MAX_BUCKETS + 1);
        assert_eq!(b.of(10_000_000_000), b.count - 1);
        assert_eq!(Buckets::new(0).width_ns, 1_000_000);
        let long = Buckets::new(3_600 * 1_000_000_000);
        assert!(long.count <= MAX_BUCKETS + 1, "{long:?}");
    }

    #[test]
    fn log_ranges_leave_the_top_free() {
        let (low, high) = log_range(0.1, 1000.0);
        assert!((low - 0.1 / 1.5).abs() < 1e-12);
        let data_top = (1000f64.log10() - low.log10()) / (high.log10() - low.log10());
        assert!((data_top - (1.0 - HEADROOM)).abs() < 1e-9, "{data_top}");
        // A narrow range is widened, so a few equal points do not fill the whole height.
        let (low, high) = log_range(1.0, 1.1);
        let data_top = (1.1f64.log10() - low.log10()) / (high.log10() - low.log10());
        assert!(data_top < 0.5, "{data_top}");
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&sorted, 0.5), 50.0);
        assert_eq!(quantile(&sorted, 0.99), 99.0);
        assert_eq!(quantile(&sorted, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.5), 7.0);
    }

    #[test]
    fn a_large_history_draws_a_bounded_number_of_points_with_fault_bands() {
        let mut events = Vec::new();
        for i in 0..30_000u64 {
            let t = i * 100_000;
            let kind = match i % 10 {
                0 => OpType::Fail,
                1 => OpType::Info,
                _ => OpType::Ok,
            };
            events.push(Op::invoke(i % 7, "read", json!(null)).with_time(t));
            events.push(Op::complete(i % 7, kind, "read", json!(1)).with_time(t + 50_000 + i));
        }
        let digest = Digest::from_ops(events);
        let faults = fault_intervals(&[
            NemesisEvent {
                index: 0,
                time: 1_000_000_000,
                f: "kill".into(),
                value: json!("n<1>"),
            },
            NemesisEvent {
                index: 1,
                time: 2_000_000_000,
                f: "start".into(),
                value: json!("n<1>"),
            },
        ]);
        let plots = plots(&digest, &faults).unwrap();
        assert_eq!(plots.latency.len(), 1);
        let svg = &plots.latency[0].1;
        let circles = svg.matches("<circle").count();
        // Points plus the legend's markers.
        assert!(
            circles <= MAX_OK_POINTS + 2 * MAX_FAIL_POINTS + 3,
            "{circles}"
        );
        assert!(circles > 1_000, "{circles}");
        assert!(svg.contains("kill n&lt;1&gt;"), "fault labels are escaped");
        assert!(svg.contains("of 24000 shown"));
        let throughput = plots.throughput.unwrap();
        assert!(throughput.contains("<polyline") || throughput.contains("<path"));
        assert!(plots.quantiles.unwrap().contains("p99"));
    }

    #[test]
    fn a_history_without_times_gets_a_note_instead_of_plots() {
        let digest = Digest::from_ops(vec![
            Op::invoke(0, "read", json!(null)),
            Op::complete(0, OpType::Ok, "read", json!(1)),
        ]);
        let plots = plots(&digest, &[]).unwrap();
        assert!(plots.latency.is_empty() && plots.quantiles.is_none());
        assert!(plots.notes[0].contains("no times"));
    }
}
