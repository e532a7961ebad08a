//! The charts of `sotto bench run`, drawn with `plotters` as SVG and PNG: a CPU timeline per
//! row with the mean and peak budget lines, a latency distribution per row, and one
//! correctness-vs-latency scatter of every row with the promises drawn as a box.
//!
//! Every chart is 900x420 px and written twice, as `<name>.svg` and `<name>.png`:
//! - `cpu-<slug>`: process CPU % per 100 ms window against time, with the mean and peak
//!   budgets as horizontal lines;
//! - `latency-<slug>`: the verdict latencies as an empirical CDF (a step line: the share of
//!   requests at or below each latency), chosen over a histogram because the p95 is read
//!   straight off it, where the curve crosses 0.95, next to the vertical p95 promise line;
//! - `accuracy-vs-latency`: one labelled point per row at (p95, accuracy), inside or outside
//!   the promise box `0..p95 promise` x `accuracy promise..1`.
//!
//! Text in a PNG needs a TrueType font: one is read once from a few well-known system paths
//! and registered as "sans-serif"; no font is vendored. Without one the SVGs are still
//! written (no text is measured to lay them out; the viewer renders it) and the PNGs are
//! skipped with one warning. This module only draws: it must not compute any figure the
//! report states; the rows arrive with their accuracy and p95 already measured.

use std::fmt::Display;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::AsRangedCoord;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::full_palette::{BLUE_700, GREEN_700, ORANGE_700, RED_700};
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// What the charts draw of one row of the matrix.
pub struct Row<'a> {
    /// The row's name; files are named after it (`cpu-<slug>.svg`).
    pub name: &'a str,
    /// Per 100 ms window: (seconds since the row's stream began, process CPU in % of the machine).
    pub cpu: &'a [(f64, f64)],
    /// Verdict latencies of the row's requests, ms.
    pub latency_ms: &'a [f64],
    /// MEASURING.md's accuracy, 0..1.
    pub accuracy: f64,
    /// The verdict latency's p95, ms.
    pub p95_ms: f64,
}

/// The promises drawn as lines and boxes.
pub struct Promises {
    /// CPU budgets, % of the machine.
    pub cpu_mean: f64,
    pub cpu_peak: f64,
    /// Latency promise, ms.
    pub p95_ms: f64,
    /// Correctness promise, 0..1.
    pub accuracy: f64,
}

/// Pixel size of every chart: wide enough for a 10-minute timeline, short enough to sit in a
/// report beside its table.
const SIZE: (u32, u32) = (900, 420);
/// The one font family of every text style; the PNG font is registered under this name, and
/// SVG viewers resolve it themselves.
const FAMILY: &str = "sans-serif";
/// Headroom above the largest value on a latency axis, so the last point is not on the frame.
const HEADROOM: f64 = 1.15;
/// The lowest latency the log-scale scatter draws: a sub-millisecond p95 sits at 0.1 ms.
const LOG_FLOOR_MS: f64 = 0.1;
/// Text sizes, px: the title, and everything else (ticks, axis names, legend, point labels).
const TITLE_SIZE: u32 = 20;
const TEXT_SIZE: u32 = 13;
/// Vertical layout, px from the top: the legend row's centre line, and the plot's top edge.
const LEGEND_Y: i32 = 44;
const PLOT_TOP: u32 = 62;
/// Where a TrueType font for PNG text is looked for, in order.
const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Draws every chart into `dir`, as SVG and as PNG; returns the files written.
pub fn draw(dir: &Path, rows: &[Row], promises: &Promises) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create the chart folder {}: {e}", dir.display()))?;
    let png = png_font_registered();
    let painter = Painter { promises, family: FAMILY };
    let mut charts = Vec::with_capacity(rows.len() * 2 + 1);
    for row in rows {
        let slug = super::slug(row.name);
        charts.push((format!("cpu-{slug}"), Chart::Cpu(row)));
        charts.push((format!("latency-{slug}"), Chart::Latency(row)));
    }
    charts.push(("accuracy-vs-latency".to_owned(), Chart::AccuracyVsLatency(rows)));

    let mut written = Vec::with_capacity(charts.len() * 2);
    for (stem, chart) in &charts {
        let svg = dir.join(format!("{stem}.svg"));
        write_svg(&svg, &painter, chart)?;
        written.push(svg);
        if png {
            let png = dir.join(format!("{stem}.png"));
            write_png(&png, &painter, chart)?;
            written.push(png);
        }
    }
    Ok(written)
}

/// One chart, whichever backend it is drawn on.
enum Chart<'r, 'a> {
    Cpu(&'r Row<'a>),
    Latency(&'r Row<'a>),
    AccuracyVsLatency(&'r [Row<'a>]),
}

fn write_svg(path: &Path, painter: &Painter, chart: &Chart) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    painter.paint(&root, chart).map_err(|e| e.context(format!("cannot draw {}", path.display())))
}

fn write_png(path: &Path, painter: &Painter, chart: &Chart) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    painter.paint(&root, chart).map_err(|e| e.context(format!("cannot draw {}", path.display())))
}

/// The cartesian chart every chart of this module draws on.
type Plot<'c, DB> = Frame<'c, DB, RangedCoordf64, RangedCoordf64>;
/// A chart over any two coordinate types.
type Frame<'c, DB, X, Y> = ChartContext<'c, DB, Cartesian2d<X, Y>>;

/// How a legend entry shows its series.
enum Key {
    Line(RGBColor),
    Area(RGBColor),
}

/// Draws the charts with one set of promises and one font family.
///
/// Nothing here asks plotters to measure text (no `caption`, no `configure_series_labels`):
/// with `ab_glyph` that needs a registered font, and the SVGs must not depend on one. Titles
/// are anchored, and legends spaced by a character-count estimate instead.
struct Painter<'p> {
    promises: &'p Promises,
    family: &'p str,
}

impl Painter<'_> {
    fn paint<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, chart: &Chart) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(drawing)?;
        match chart {
            Chart::Cpu(row) => self.cpu(root, row)?,
            Chart::Latency(row) => self.latency(root, row)?,
            Chart::AccuracyVsLatency(rows) => self.accuracy(root, rows)?,
        }
        root.present().map_err(drawing)
    }

    /// The CPU timeline of one row, clamped to 0..100 %, with both budgets.
    fn cpu<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, row: &Row) -> anyhow::Result<()> {
        let points: Vec<(f64, f64)> = row
            .cpu
            .iter()
            .filter(|(t, cpu)| t.is_finite() && cpu.is_finite())
            .map(|&(t, cpu)| (t.max(0.0), cpu.clamp(0.0, 100.0)))
            .collect();
        let end = axis_end(points.iter().map(|&(t, _)| t), 1.0);
        let mut chart = self.plot(root, row.name, 0.0..end, 0.0..100.0)?;
        self.mesh(&mut chart, "time (s)", "process CPU per 100 ms (% of machine)")?;
        chart.draw_series(LineSeries::new(points, BLUE_700.stroke_width(1))).map_err(drawing)?;
        let mut legend = vec![("CPU".to_owned(), Key::Line(BLUE_700))];
        let budgets =
            [(self.promises.cpu_mean, ORANGE_700, "mean budget"), (self.promises.cpu_peak, RED_700, "peak budget")];
        for (budget, color, label) in budgets.into_iter().filter(|(b, _, _)| b.is_finite()) {
            let line = [(0.0, budget), (end, budget)];
            chart.draw_series(LineSeries::new(line, color.stroke_width(2))).map_err(drawing)?;
            legend.push((format!("{label} ({budget:.0} %)"), Key::Line(color)));
        }
        self.legend(root, &legend)
    }

    /// The empirical CDF of one row's verdict latencies, with the p95 promise; a row without
    /// requests draws the axes and the promise alone.
    fn latency<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, row: &Row) -> anyhow::Result<()> {
        let steps = ecdf_steps(row.latency_ms);
        let promise = self.promises.p95_ms;
        let largest = steps.iter().map(|&(ms, _)| ms).chain([promise]);
        let end = axis_end(largest, 1.0) * HEADROOM;
        let mut chart = self.plot(root, row.name, 0.0..end, 0.0..1.0)?;
        self.mesh(&mut chart, "verdict latency (ms)", "share of requests at or below")?;
        let requests = steps.len() / 2;
        chart.draw_series(LineSeries::new(steps, BLUE_700.stroke_width(2))).map_err(drawing)?;
        let mut legend = vec![(format!("latency CDF ({requests} requests)"), Key::Line(BLUE_700))];
        if promise.is_finite() {
            let line = [(promise, 0.0), (promise, 1.0)];
            chart.draw_series(LineSeries::new(line, RED_700.stroke_width(2))).map_err(drawing)?;
            legend.push((format!("p95 promise ({promise:.0} ms)"), Key::Line(RED_700)));
        }
        self.legend(root, &legend)
    }

    /// Every row as a labelled point at (p95, accuracy), over the lightly filled promise box.
    /// The latency axis is logarithmic: sotto's verdicts take milliseconds and the baseline's
    /// seconds, and on a linear axis every fast row lands on one pixel. Labels are placed by
    /// [`place_labels`], so rows at the same spot are listed one under another, each joined
    /// to its point by a thin line.
    fn accuracy<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, rows: &[Row]) -> anyhow::Result<()> {
        let points: Vec<(&str, f64, f64)> = rows
            .iter()
            .filter(|row| row.p95_ms.is_finite() && row.accuracy.is_finite())
            .map(|row| (row.name, row.p95_ms.max(LOG_FLOOR_MS), row.accuracy.clamp(0.0, 1.0)))
            .collect();
        let (promise_ms, promise_accuracy) = (self.promises.p95_ms, self.promises.accuracy);
        let largest = points.iter().map(|&(_, ms, _)| ms).chain([promise_ms]);
        let end = axis_end(largest, 1.0) * 2.0;
        let start = points.iter().map(|&(_, ms, _)| ms).fold(end / 10.0, f64::min) / 2.0;
        let title = "accuracy vs verdict latency p95";
        let mut chart = self.frame(root, title, (start..end).log_scale(), 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("verdict latency p95 (ms, log scale)")
            .y_desc("accuracy")
            .x_label_formatter(&|v| format!("{v}"))
            .y_label_formatter(&|v| format!("{v:.2}"))
            .label_style(self.text(TEXT_SIZE))
            .axis_desc_style(self.text(TEXT_SIZE))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(drawing)?;
        let mut legend = Vec::new();
        if promise_ms.is_finite() && promise_accuracy.is_finite() {
            let corners = [(start, promise_accuracy.clamp(0.0, 1.0)), (promise_ms.max(start), 1.0)];
            let promise_box = [
                Rectangle::new(corners, GREEN_700.mix(0.12).filled()),
                Rectangle::new(corners, GREEN_700.stroke_width(1)),
            ];
            chart.draw_series(promise_box).map_err(drawing)?;
            let label = format!("promise (p95 ≤ {promise_ms:.0} ms, accuracy ≥ {promise_accuracy:.2})");
            legend.push((label, Key::Area(GREEN_700)));
        }
        let dots = points.iter().map(|&(_, ms, accuracy)| Circle::new((ms, accuracy), 4, BLUE_700.filled()));
        chart.draw_series(dots).map_err(drawing)?;
        let pixels: Vec<(i32, i32)> = points.iter().map(|&(_, ms, a)| chart.backend_coord(&(ms, a))).collect();
        let widths: Vec<i32> =
            points.iter().map(|(name, _, _)| estimated_width(name.chars().count(), TEXT_SIZE)).collect();
        let right = (SIZE.0 - 12) as i32;
        let style = self.text(TEXT_SIZE).pos(Pos::new(HPos::Left, VPos::Center));
        for (i, (x, y)) in place_labels(&pixels, &widths, right).into_iter().enumerate() {
            let (px, py) = pixels[i];
            if (y - py).abs() > 2 || x < px {
                let join = PathElement::new([(px, py), (x - 2, y)], BLUE_700.mix(0.5).stroke_width(1));
                root.draw(&join).map_err(drawing)?;
            }
            root.draw(&Text::new(points[i].0.to_owned(), (x, y), style.clone())).map_err(drawing)?;
        }
        self.legend(root, &legend)
    }

    /// The title, centred at the top, and below it and the legend row the cartesian chart
    /// over `x` and `y`.
    fn plot<'c, DB: DrawingBackend>(
        &self,
        root: &'c DrawingArea<DB, Shift>,
        title: &str,
        x: Range<f64>,
        y: Range<f64>,
    ) -> anyhow::Result<Plot<'c, DB>> {
        self.frame(root, title, x, y)
    }

    /// [`Self::plot`] over any coordinates (the scatter's latency axis is logarithmic).
    fn frame<'c, DB: DrawingBackend, X: AsRangedCoord, Y: AsRangedCoord>(
        &self,
        root: &'c DrawingArea<DB, Shift>,
        title: &str,
        x: X,
        y: Y,
    ) -> anyhow::Result<Frame<'c, DB, X::CoordDescType, Y::CoordDescType>> {
        let centre = (SIZE.0 / 2) as i32;
        let title_style = self.text(TITLE_SIZE).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(title, (centre, 8), title_style)).map_err(drawing)?;
        ChartBuilder::on(root)
            .margin(12)
            .margin_top(PLOT_TOP)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x, y)
            .map_err(drawing)
    }

    /// The grid, tick labels (with as many decimals as the axis length needs) and axis names.
    fn mesh<DB: DrawingBackend>(&self, chart: &mut Plot<DB>, x_desc: &str, y_desc: &str) -> anyhow::Result<()> {
        let (x, y) = (chart.x_range(), chart.y_range());
        let (x_decimals, y_decimals) = (decimals(x.end - x.start), decimals(y.end - y.start));
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|v| format!("{v:.x_decimals$}"))
            .y_label_formatter(&|v| format!("{v:.y_decimals$}"))
            .label_style(self.text(TEXT_SIZE))
            .axis_desc_style(self.text(TEXT_SIZE))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(drawing)
    }

    /// The legend as one centred row between the title and the plot, where it hides no data;
    /// entries are spaced by an estimate of their labels' width.
    fn legend<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        entries: &[(String, Key)],
    ) -> anyhow::Result<()> {
        const KEY: i32 = 20;
        const GAP: i32 = 6;
        const SPACING: i32 = 24;
        let widths: Vec<i32> =
            entries.iter().map(|(label, _)| KEY + GAP + estimated_width(label.chars().count(), TEXT_SIZE)).collect();
        let total = widths.iter().sum::<i32>() + SPACING * (widths.len() as i32 - 1).max(0);
        let mut x = (SIZE.0 as i32 - total) / 2;
        let y = LEGEND_Y;
        let label_style = self.text(TEXT_SIZE).pos(Pos::new(HPos::Left, VPos::Center));
        for ((label, key), width) in entries.iter().zip(widths) {
            match key {
                Key::Line(color) => {
                    let line = PathElement::new([(x, y), (x + KEY, y)], color.stroke_width(2));
                    root.draw(&line).map_err(drawing)?;
                }
                Key::Area(color) => {
                    let swatch = [(x, y - 5), (x + KEY, y + 5)];
                    root.draw(&Rectangle::new(swatch, color.mix(0.3).filled())).map_err(drawing)?;
                    root.draw(&Rectangle::new(swatch, color.stroke_width(1))).map_err(drawing)?;
                }
            }
            let text = Text::new(label.as_str(), (x + KEY + GAP, y), label_style.clone());
            root.draw(&text).map_err(drawing)?;
            x += width + SPACING;
        }
        Ok(())
    }

    fn text(&self, size: u32) -> TextStyle<'_> {
        TextStyle::from((self.family, size).into_font()).color(&BLACK)
    }
}

/// Decimals a tick label needs on an axis `length` long: none from 10 on, else two.
fn decimals(length: f64) -> usize {
    if length >= 10.0 { 0 } else { 2 }
}

/// A generous width of `chars` characters of a sans-serif font at `size` px, so a legend
/// box holds its labels in any font the viewer picks.
fn estimated_width(chars: usize, size: u32) -> i32 {
    (chars as f64 * f64::from(size) * 0.55).ceil() as i32
}

/// Where each point's label starts (left edge, vertical centre), in pixels: right of its
/// point, or left of it where the label would cross `right`; a label that would overlap one
/// already placed moves down a line at a time until it is clear. Points are labelled top to
/// bottom, left to right, so a cluster's labels read as a list.
fn place_labels(points: &[(i32, i32)], widths: &[i32], right: i32) -> Vec<(i32, i32)> {
    const LINE: i32 = TEXT_SIZE as i32 + 3;
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| (points[i].1, points[i].0));
    let mut placed: Vec<(i32, i32, i32)> = Vec::new(); // (left, centre y, width)
    let mut at = vec![(0, 0); points.len()];
    for i in order {
        let (px, py) = points[i];
        let width = widths[i];
        let x = if px + 8 + width > right { (px - 8 - width).max(0) } else { px + 8 };
        let mut y = py;
        while placed.iter().any(|&(l, c, w)| (c - y).abs() < LINE && x < l + w && l < x + width) {
            y += LINE;
        }
        placed.push((x, y, width));
        at[i] = (x, y);
    }
    at
}

/// The empirical CDF of `values` as the corners of a step line, ascending; non-finite values
/// are dropped, and no values give no steps.
fn ecdf_steps(values: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let mut steps = Vec::with_capacity(sorted.len() * 2);
    for (i, &value) in sorted.iter().enumerate() {
        steps.push((value, i as f64 / n));
        steps.push((value, (i + 1) as f64 / n));
    }
    steps
}

/// The largest finite positive value of `values`, or `fallback` when there is none, so an
/// axis never has zero length.
fn axis_end(values: impl Iterator<Item = f64>, fallback: f64) -> f64 {
    values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold(None, |end: Option<f64>, v| Some(end.map_or(v, |e| e.max(v))))
        .unwrap_or(fallback)
}

/// plotters' errors are generic over the backend; the bench only reports them.
fn drawing(error: impl Display) -> anyhow::Error {
    anyhow::anyhow!("{error}")
}

/// Whether a TrueType font is registered as [`FAMILY`] for PNG text; tries once per process
/// and warns once when no font is found.
fn png_font_registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let found = FONT_PATHS.iter().any(|path| register_font_file(Path::new(path)));
        if !found {
            tracing::warn!(
                tried = ?FONT_PATHS,
                "PNG charts need a TrueType font and none was found; writing SVG charts only"
            );
        }
        found
    })
}

/// Registers the font at `path` as [`FAMILY`]; false when it is missing or not a font. The
/// bytes are leaked: plotters keeps them for the life of the process.
fn register_font_file(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system temp dir, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let unique = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let dir = std::env::temp_dir().join(format!("sotto-chart-{tag}-{}-{unique}", std::process::id()));
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    fn promises() -> Promises {
        Promises { cpu_mean: 35.0, cpu_peak: 60.0, p95_ms: 800.0, accuracy: 0.9 }
    }

    #[test]
    fn labels_of_points_at_one_spot_do_not_overlap() {
        let points = [(100, 50), (100, 50), (101, 51), (600, 200), (880, 300)];
        let widths = [150, 150, 150, 100, 100];
        let at = place_labels(&points, &widths, 888);
        for i in 0..at.len() {
            for j in 0..i {
                let ((xi, yi), (xj, yj)) = (at[i], at[j]);
                let crosses = xi < xj + widths[j] && xj < xi + widths[i];
                assert!(!crosses || (yi - yj).abs() >= TEXT_SIZE as i32, "labels {i} and {j} overlap: {at:?}");
            }
        }
        assert_eq!(at[3], (608, 200), "a lone label sits right of its point");
        assert!(at[4].0 + widths[4] <= 888, "a label near the right edge goes left of its point");
    }

    #[test]
    fn ecdf_rises_to_one_in_order() {
        let steps = ecdf_steps(&[30.0, 10.0, f64::NAN, 20.0]);
        let expected =
            [(10.0, 0.0), (10.0, 1.0 / 3.0), (20.0, 1.0 / 3.0), (20.0, 2.0 / 3.0), (30.0, 2.0 / 3.0), (30.0, 1.0)];
        assert_eq!(steps, expected);
        assert!(ecdf_steps(&[]).is_empty());
    }

    #[test]
    fn draws_every_chart_as_svg_and_png() -> anyhow::Result<()> {
        let scratch = Scratch::new("all");
        let cpu_a: Vec<(f64, f64)> = (0..300).map(|i| (i as f64 * 0.1, 20.0 + (i % 40) as f64)).collect();
        let cpu_b: Vec<(f64, f64)> = (0..50).map(|i| (i as f64 * 0.1, 70.0)).collect();
        let latency_a: Vec<f64> = (1..=200).map(|i| i as f64 * 4.0).collect();
        let rows = [
            Row { name: "Gemma 3 / 35% idle", cpu: &cpu_a, latency_ms: &latency_a, accuracy: 0.93, p95_ms: 760.0 },
            Row { name: "Qwen 1.5B busy", cpu: &cpu_b, latency_ms: &[], accuracy: 0.81, p95_ms: 1200.0 },
        ];
        let written = draw(&scratch.0, &rows, &promises())?;

        let png = png_font_registered();
        let stems = [
            ("cpu-gemma-3-35-idle", Some(rows[0].name)),
            ("latency-gemma-3-35-idle", Some(rows[0].name)),
            ("cpu-qwen-1-5b-busy", Some(rows[1].name)),
            ("latency-qwen-1-5b-busy", Some(rows[1].name)),
            ("accuracy-vs-latency", None),
        ];
        assert_eq!(written.len(), stems.len() * if png { 2 } else { 1 });
        for (stem, name) in stems {
            let svg_path = scratch.0.join(format!("{stem}.svg"));
            assert!(written.contains(&svg_path), "{stem}.svg not reported");
            let svg = std::fs::read_to_string(&svg_path)?;
            assert!(svg.contains("<svg"), "{stem}.svg is not an SVG");
            let names: Vec<&str> = match name {
                Some(name) => vec![name],
                None => rows.iter().map(|row| row.name).collect(),
            };
            for name in names {
                assert!(svg.contains(name), "{stem}.svg lacks the text {name:?}");
            }
            let png_path = scratch.0.join(format!("{stem}.png"));
            assert_eq!(png_path.exists(), png, "{stem}.png written iff a font was found");
            if png {
                assert!(written.contains(&png_path), "{stem}.png not reported");
                let bytes = std::fs::read(&png_path)?;
                assert!(bytes.starts_with(&PNG_SIGNATURE), "{stem}.png is not a PNG");
            }
        }
        Ok(())
    }

    #[test]
    fn latency_promise_line_is_drawn_without_requests() -> anyhow::Result<()> {
        let scratch = Scratch::new("empty");
        let rows = [Row { name: "no requests", cpu: &[], latency_ms: &[], accuracy: f64::NAN, p95_ms: f64::NAN }];
        draw(&scratch.0, &rows, &promises())?;
        let svg = std::fs::read_to_string(scratch.0.join("latency-no-requests.svg"))?;
        assert!(svg.contains("p95 promise"), "the promise line's legend is missing");
        assert!(svg.contains("(0 requests)"), "the empty series' legend is missing");
        Ok(())
    }

    #[test]
    fn svg_needs_no_registered_font() -> anyhow::Result<()> {
        let scratch = Scratch::new("nofont");
        std::fs::create_dir_all(&scratch.0)?;
        let promises = promises();
        let painter = Painter { promises: &promises, family: "no-such-family" };
        let rows = [Row { name: "unregistered", cpu: &[(0.0, 10.0)], latency_ms: &[5.0], accuracy: 0.5, p95_ms: 5.0 }];
        let charts = [Chart::Cpu(&rows[0]), Chart::Latency(&rows[0]), Chart::AccuracyVsLatency(&rows)];
        for (i, chart) in charts.iter().enumerate() {
            let path = scratch.0.join(format!("{i}.svg"));
            write_svg(&path, &painter, chart)?;
            let svg = std::fs::read_to_string(&path)?;
            assert!(svg.contains("no-such-family"), "chart {i} does not name its font");
            assert!(svg.contains("unregistered"), "chart {i} lacks the row name");
        }
        Ok(())
    }
}
