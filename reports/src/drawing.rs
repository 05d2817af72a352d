//! A small SVG chart over the run's time axis, for the coordination workloads' drawings
//! (`coordination.rs`): a title, the fault bands shaded and labelled as in the other plots,
//! a time axis in seconds, and whatever the caller draws between (lanes of bars, markers,
//! lines).
//!
//! Written by hand rather than with plotters because these drawings are made of labelled
//! bars and markers with CSS classes (which the page styles and the tests look for), not of
//! data series. Every element a caller adds is placed by [`Chart::x`], so a zoomed chart is
//! the same code over a shorter span.

use std::fmt::Write as _;

use crate::escape::{html, truncate};
use crate::faults::FaultInterval;
use crate::plots::fault_color;

/// The drawings' width in SVG units (scaled to the page's width by CSS).
pub const WIDTH: f64 = 1000.0;
/// Room left of the plot for lane labels.
pub const LEFT: f64 = 92.0;
const RIGHT: f64 = 14.0;
/// Height of the time axis below the plot.
const AXIS: f64 = 34.0;
/// Rows of fault labels above the plot (more faults are staggered over them).
const FAULT_LABEL_ROWS: usize = 3;

/// A colour as `#rrggbb`.
pub fn hex(color: plotters::style::RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", color.0, color.1, color.2)
}

/// Categorical colours for holders, tokens and leaders: no red (red marks what is wrong)
/// and no orange (the colour of `info`).
pub const PALETTE: [&str; 8] = [
    "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
];

/// The colour of anomalies: overlapping holders, two leaders, rejected or stale writes.
pub const ANOMALY: &str = "#d62728";

/// A chart under construction over the time span `t0..t1` (nanoseconds, the history's
/// times).
pub struct Chart {
    pub t0: u64,
    pub t1: u64,
    /// Top of the plot area.
    pub top: f64,
    pub plot_height: f64,
    svg: String,
    class: String,
    /// The boxes of the labels placed by [`Chart::free_label`], which must not overlap.
    placed: Vec<(f64, f64, f64, f64)>,
    /// Those labels, drawn last so that no mark covers them.
    labels: String,
}

impl Chart {
    /// A chart titled `title` whose plot area is `plot_height` high, with room above it for
    /// the labels of the faults in `faults` that fall in the span.
    pub fn new(
        class: &str,
        title: &str,
        (t0, t1): (u64, u64),
        plot_height: f64,
        faults: &[FaultInterval],
    ) -> Chart {
        let t1 = t1.max(t0 + 1);
        let in_view = faults
            .iter()
            .filter(|f| f.start < t1 && f.end.is_none_or(|e| e > t0))
            .count()
            .min(FAULT_LABEL_ROWS);
        let top = 26.0 + 13.0 * in_view as f64;
        let mut chart = Chart {
            t0,
            t1,
            top,
            plot_height,
            svg: String::new(),
            class: class.to_string(),
            placed: Vec::new(),
            labels: String::new(),
        };
        let _ = write!(
            chart.svg,
            "<text x=\"4\" y=\"16\" class=\"chart-title\">{}</text>",
            html(title)
        );
        let _ = write!(
            chart.svg,
            "<rect class=\"plot-area\" x=\"{LEFT}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
            top,
            WIDTH - LEFT - RIGHT,
            plot_height
        );
        chart.faults(faults);
        chart.axis();
        chart
    }

    /// The x of a time, clamped to the plot area.
    pub fn x(&self, t: u64) -> f64 {
        let t = t.clamp(self.t0, self.t1);
        LEFT + (t - self.t0) as f64 / (self.t1 - self.t0) as f64 * (WIDTH - LEFT - RIGHT)
    }

    /// The right edge of the plot area.
    pub fn right(&self) -> f64 {
        WIDTH - RIGHT
    }

    pub fn bottom(&self) -> f64 {
        self.top + self.plot_height
    }

    /// Nanoseconds one unit of x spans.
    pub fn ns_per_unit(&self) -> f64 {
        (self.t1 - self.t0) as f64 / (WIDTH - LEFT - RIGHT)
    }

    /// Appends raw SVG (the caller escapes what it puts in).
    pub fn push(&mut self, svg: &str) {
        self.svg.push_str(svg);
    }

    /// A lane's label at the left, centred on `y`.
    pub fn lane_label(&mut self, y: f64, label: &str, class: &str) {
        let _ = write!(
            self.svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"lane-label {class}\" text-anchor=\"end\">{}\
             </text><line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" class=\"lane\"/>",
            LEFT - 6.0,
            y + 4.0,
            html(&truncate(label, 14)),
            self.right(),
            y,
            y
        );
    }

    /// A label at `(x, y)`, moved left of `x` when it would run past the right edge.
    pub fn label(&mut self, x: f64, y: f64, text: &str, class: &str) {
        let svg = self.label_svg(x, y, text, class);
        self.svg.push_str(&svg);
    }

    fn label_svg(&self, x: f64, y: f64, text: &str, class: &str) -> String {
        let (text, x, anchor, _) = self.label_geometry(x, text);
        format!(
            "<text x=\"{x:.1}\" y=\"{y:.1}\" class=\"{class}\" text-anchor=\"{anchor}\">{}</text>",
            html(&text)
        )
    }

    /// A label as [`Chart::label`] places it, unless it would overlap one placed before by
    /// this method (then nothing is drawn: the marks keep their tooltips). Whether it was
    /// placed.
    pub fn free_label(&mut self, x: f64, y: f64, text: &str, class: &str) -> bool {
        let (_, _, _, (left, right)) = self.label_geometry(x, text);
        let (top, bottom) = (y - 10.0, y + 2.0);
        let clash = self
            .placed
            .iter()
            .any(|&(l, t, r, b)| left < r && l < right && top < b && t < bottom);
        if clash {
            return false;
        }
        self.placed.push((left, top, right, bottom));
        let svg = self.label_svg(x, y, text, class);
        self.labels.push_str(&svg);
        true
    }

    /// The text as drawn, its x and anchor, and its left and right edges.
    fn label_geometry(&self, x: f64, text: &str) -> (String, f64, &'static str, (f64, f64)) {
        let text = truncate(text, 90);
        let width = 6.2 * text.chars().count() as f64;
        if x + width > self.right() {
            (text, x - 4.0, "end", (x - 4.0 - width, x - 4.0))
        } else {
            (text, x + 4.0, "start", (x + 4.0, x + 4.0 + width))
        }
    }

    fn faults(&mut self, faults: &[FaultInterval]) {
        let mut row = 0;
        for fault in faults {
            let end = fault.end.unwrap_or(self.t1);
            if fault.start >= self.t1 || end <= self.t0 {
                continue;
            }
            let color = hex(fault_color(&fault.kind));
            let (x0, x1) = (self.x(fault.start), self.x(end));
            let _ = write!(
                self.svg,
                "<g class=\"fault\"><title>{}</title><rect x=\"{x0:.1}\" y=\"{:.1}\" \
                 width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\" fill-opacity=\"0.16\"/>",
                html(&fault.label),
                self.top,
                (x1 - x0).max(1.0),
                self.plot_height
            );
            let y = 28.0 + 13.0 * (row % FAULT_LABEL_ROWS) as f64 + 8.0;
            row += 1;
            let label = truncate(&fault.label, 28);
            let width = 6.2 * label.chars().count() as f64;
            let (x, anchor) = if x0 + width > self.right() {
                (x0 - 2.0, "end")
            } else {
                (x0 + 2.0, "start")
            };
            let _ = write!(
                self.svg,
                "<text x=\"{x:.1}\" y=\"{y:.1}\" fill=\"{color}\" class=\"fault-label\" \
                 text-anchor=\"{anchor}\">{}</text></g>",
                html(&label)
            );
        }
    }

    fn axis(&mut self) {
        let span_s = (self.t1 - self.t0) as f64 / 1e9;
        let step = nice_step(span_s / 8.0);
        let decimals = (-step.log10().floor()).max(0.0) as usize;
        let bottom = self.bottom();
        let first = (self.t0 as f64 / 1e9 / step).ceil() as i64;
        let last = (self.t1 as f64 / 1e9 / step).floor() as i64;
        for k in first..=last {
            let s = k as f64 * step;
            let x = self.x((s * 1e9).round() as u64);
            let _ = write!(
                self.svg,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{bottom:.1}\" y2=\"{:.1}\" class=\"tick\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"middle\">\
                 {s:.decimals$}</text>",
                bottom + 4.0,
                bottom + 16.0
            );
        }
        let _ = write!(
            self.svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">time (s)</text>",
            self.right(),
            bottom + 30.0
        );
    }

    /// The finished `<svg>`, in a scrolling container.
    pub fn finish(self) -> String {
        let height = (self.bottom() + AXIS).ceil();
        format!(
            "<div class=\"coord-scroll\"><svg class=\"coord {}\" xmlns=\"http://www.w3.org/2000/svg\" \
             width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\">{}{}</svg></div>",
            html(&self.class),
            self.svg,
            self.labels
        )
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
pub fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * power >= raw * 0.999_999 {
            return m * power;
        }
    }
    10.0 * power
}

/// Milliseconds, for labels: `12.3 ms`, `1.20 s`.
pub fn duration_text(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(0.03), 0.05);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(duration_text(12_345_678), "12 ms");
        assert_eq!(duration_text(1_500_000), "1.5 ms");
        assert_eq!(duration_text(2_500_000_000), "2.50 s");
    }

    #[test]
    fn faults_in_the_span_are_shaded_and_times_map_to_the_plot() {
        let fault = FaultInterval {
            kind: "pause".into(),
            label: "pause <n1>".into(),
            start: 2_000_000_000,
            end: Some(3_000_000_000),
            end_f: Some("resume".into()),
            start_index: 0,
        };
        let chart = Chart::new("t", "a <title>", (0, 10_000_000_000), 100.0, &[fault]);
        assert_eq!(chart.x(0), LEFT);
        assert_eq!(chart.x(20_000_000_000), chart.right());
        let svg = chart.finish();
        assert!(svg.contains("pause &lt;n1&gt;"), "{svg}");
        assert!(svg.contains("a &lt;title&gt;"));
        assert!(
            svg.contains("fill=\"#f59f00\""),
            "pause colour as in the plots"
        );
        let mut chart = Chart::new("t", "labels", (0, 10), 100.0, &[]);
        assert!(chart.free_label(100.0, 50.0, "first", "a"));
        assert!(
            !chart.free_label(110.0, 52.0, "second", "a"),
            "it would overlap"
        );
        assert!(chart.free_label(110.0, 70.0, "third", "a"));
        let labels = chart.finish();
        assert!(labels.contains(">first<") && labels.contains(">third<"));
        assert!(!labels.contains(">second<"));
        // Ticks every 2 s (10 s / 8 rounded up to 2): 0, 2, ..., 10.
        assert_eq!(svg.matches("class=\"tick\"").count(), 6, "{svg}");
        assert!(svg.contains(">10</text>"));
    }
}
