//! PNG charts for sprig's reports: line charts (training curves, memory over time), grouped bar
//! charts (load-test throughput and latency) and a confusion-matrix heatmap. Text is drawn with
//! the bundled DejaVu Sans (`assets/`, Bitstream Vera license), so no system fonts are needed.

use std::path::Path;
use std::sync::Once;

use plotters::element::DynElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

#[derive(Debug, thiserror::Error)]
#[error("drawing {path}: {message}")]
pub struct PlotError {
    path: String,
    message: String,
}

type Result<T = ()> = std::result::Result<T, PlotError>;

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (900, 560);
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        let registered = plotters::style::register_font(FONT, FontStyle::Normal, bytes);
        assert!(registered.is_ok(), "the bundled font parses");
    });
}

fn error(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// A named series of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// The smallest and largest finite value, if any.
fn extent(values: impl Iterator<Item = f64>) -> Option<std::ops::Range<f64>> {
    let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    (min.is_finite() && max.is_finite()).then_some(min..max)
}

fn padded_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let Some(std::ops::Range {
        start: min,
        end: max,
    }) = extent(values)
    else {
        return 0.0..1.0;
    };
    let pad = ((max - min) * 0.05).max(1e-9);
    min - pad..max + pad
}

/// The x axis of a line chart: its label, and whether x only takes whole values (epochs), which
/// then get whole-number ticks ("2", never "2.0" or "2.5").
#[derive(Debug, Clone, Copy)]
pub enum XAxis<'a> {
    Whole(&'a str),
    Continuous(&'a str),
}

/// At most this many labelled ticks on an x axis.
const MAX_X_TICKS: f64 = 12.0;

/// The tick positions of an x axis over the data's `range`: whole numbers for `XAxis::Whole`, else steps of
/// 1, 2 or 5 × 10ⁿ; at most `MAX_X_TICKS` of them.
fn x_ticks(axis: XAxis, range: &std::ops::Range<f64>) -> Vec<f64> {
    let span = (range.end - range.start).max(1e-9);
    let rough = span / MAX_X_TICKS;
    let magnitude = 10f64.powf(rough.log10().floor());
    let mut step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * magnitude);
    if matches!(axis, XAxis::Whole(_)) {
        step = step.ceil().max(1.0);
    }
    let first = (range.start / step).ceil() as i64;
    let last = (range.end / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// An f64 axis whose labelled ticks are exactly `ticks` (plotters' own f64 axis picks its own,
/// e.g. 2.5 on an epoch axis; its `WithKeyPoints` has no default label formatting to build a mesh).
struct TickedAxis {
    inner: plotters::coord::types::RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: plotters::coord::ranged1d::KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

/// A tick's label: a whole number without a decimal point, else as few decimals as it needs.
fn x_tick_label(value: f64) -> String {
    if value.fract().abs() < 1e-9 {
        format!("{}", value.round() as i64)
    } else {
        let text = format!("{value:.6}");
        text.trim_end_matches('0').to_string()
    }
}

/// Line chart of one or more series.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_axis: XAxis,
    y_label: &str,
    series: &[Series],
) -> Result {
    register_font();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(path, e))?;
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let x_range = padded_range(xs.clone());
    let ticks = x_ticks(x_axis, &extent(xs.clone()).unwrap_or(0.0..1.0));
    let x_label = match x_axis {
        XAxis::Whole(label) | XAxis::Continuous(label) => label,
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(
            TickedAxis {
                inner: x_range.into(),
                ticks,
            },
            padded_range(ys.clone()),
        )
        .map_err(|e| error(path, e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .x_label_formatter(&|x| x_tick_label(*x))
        .y_desc(y_label)
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| error(path, e))?;
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| error(path, e))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(|e| error(path, e))?;
    root.present().map_err(|e| error(path, e))
}

/// Grouped bar chart: one group per category, one bar per series in each group.
pub fn bar_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> Result {
    register_font();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(path, e))?;
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0, f64::max)
        .max(1e-9);
    let groups = categories.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..groups, 0.0..max * 1.1)
        .map_err(|e| error(path, e))?;
    let labels = categories.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(categories.len() * 2 + 1)
        .x_label_formatter(&move |x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 1e-6 && i < labels.len() {
                labels[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| error(path, e))?;
    let width = 0.8 / series.len().max(1) as f64;
    for (i, (name, values)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let bars = values.iter().enumerate().map(move |(group, &value)| {
            let left = group as f64 + 0.1 + i as f64 * width;
            Rectangle::new([(left, 0.0), (left + width * 0.95, value)], color.filled())
        });
        chart
            .draw_series(bars)
            .map_err(|e| error(path, e))?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(|e| error(path, e))?;
    root.present().map_err(|e| error(path, e))
}

/// The confusion-matrix image: the matrix on the left, its colour legend in a strip on the right.
const CONFUSION_SIZE: (u32, u32) = (860, 700);
const LEGEND_STRIP: u32 = 130;
/// The legend's colour bar inside its strip: x offset and width, top and bottom (pixels).
const LEGEND_BAR: (i32, i32, i32, i32) = (24, 28, 90, 580);

/// The fill of a cell holding `share` (0 to 1) of the largest count.
fn shade(share: f64) -> RGBColor {
    RGBColor(
        255 - (200.0 * share) as u8,
        255 - (120.0 * share) as u8,
        255 - (40.0 * share) as u8,
    )
}

/// A cell's two lines: its count, and its share of the row (of the images of that actual class).
fn cell_text(count: u64, row_total: u64) -> (String, String) {
    let percent = match row_total {
        0 => "–".to_string(),
        total => format!("{:.1} %", 100.0 * count as f64 / total as f64),
    };
    (count.to_string(), percent)
}

/// Confusion matrix (`matrix[actual][predicted]`) as a heatmap: each cell shows its count and
/// its percentage of the row, and a colour bar on the right maps shades to counts.
pub fn confusion_matrix(
    path: &Path,
    title: &str,
    classes: &[String],
    matrix: &[Vec<u64>],
) -> Result {
    register_font();
    let n = classes.len();
    let root = BitMapBackend::new(path, CONFUSION_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(path, e))?;
    let (main, legend) = root.split_horizontally(CONFUSION_SIZE.0 - LEGEND_STRIP);
    let max = matrix.iter().flatten().copied().max().unwrap_or(0).max(1);
    let labels = classes.to_vec();
    let y_labels = classes.to_vec();
    let mut chart = ChartBuilder::on(&main)
        .caption(title, (FONT, 24))
        .margin(16)
        .x_label_area_size(60)
        .y_label_area_size(140)
        .build_cartesian_2d(0.0..n as f64, 0.0..n as f64)
        .map_err(|e| error(path, e))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(n * 2 + 1)
        .y_labels(n * 2 + 1)
        .x_label_formatter(&move |x| centre_label(*x, &labels))
        .y_label_formatter(&move |y| centre_label(n as f64 - *y, &y_labels))
        .x_desc("predicted")
        .y_desc("actual (row percentages)")
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| error(path, e))?;
    for (actual, row) in matrix.iter().enumerate() {
        let row_total: u64 = row.iter().sum();
        for (predicted, &count) in row.iter().enumerate() {
            let share = count as f64 / max as f64;
            let top = (n - actual) as f64;
            let x = predicted as f64;
            let text_color = if share > 0.6 { WHITE } else { BLACK };
            let (count_text, percent_text) = cell_text(count, row_total);
            // The count above the cell's middle, its row percentage below.
            let line = |text: String, size: u32, side: VPos| {
                let style = (FONT, size)
                    .into_font()
                    .color(&text_color)
                    .pos(Pos::new(HPos::Center, side));
                Text::new(text, (x + 0.5, top - 0.5), style).into_dyn()
            };
            let cell: [DynElement<BitMapBackend, (f64, f64)>; 3] = [
                Rectangle::new([(x, top - 1.0), (x + 1.0, top)], shade(share).filled()).into_dyn(),
                line(count_text, 22, VPos::Bottom),
                line(percent_text, 15, VPos::Top),
            ];
            chart.draw_series(cell).map_err(|e| error(path, e))?;
        }
    }
    draw_colour_legend(&legend, max).map_err(|e| error(path, e))?;
    root.present().map_err(|e| error(path, e))
}

/// A vertical colour bar from 0 (bottom) to `max` (top), ticked at whole counts.
fn draw_colour_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    max: u64,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (x, width, top, bottom) = LEGEND_BAR;
    let height = bottom - top;
    for row in 0..height {
        let share = 1.0 - f64::from(row) / f64::from(height - 1);
        area.draw(&Rectangle::new(
            [(x, top + row), (x + width, top + row + 1)],
            shade(share).filled(),
        ))?;
    }
    area.draw(&Rectangle::new([(x, top), (x + width, bottom)], BLACK))?;
    let style = (FONT, 14)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for value in x_ticks(XAxis::Whole("count"), &(0.0..max as f64)) {
        let y = bottom - (f64::from(height) * value / max as f64) as i32;
        area.draw(&PathElement::new(
            vec![(x + width, y), (x + width + 5, y)],
            BLACK,
        ))?;
        area.draw(&Text::new(
            x_tick_label(value),
            (x + width + 8, y),
            style.clone(),
        ))?;
    }
    area.draw(&Text::new(
        "count",
        (x, top - 18),
        (FONT, 14).into_font().color(&BLACK),
    ))
}

/// The label of the cell whose centre is at `position`, blank elsewhere.
fn centre_label(position: f64, labels: &[String]) -> String {
    let i = position.floor();
    if (position - i - 0.5).abs() < 1e-6 && (i as usize) < labels.len() && i >= 0.0 {
        labels[i as usize].clone()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_png(path: &Path) -> bool {
        std::fs::read(path).is_ok_and(|b| b.len() > 1000 && b.starts_with(b"\x89PNG"))
    }

    #[test]
    fn draws_every_chart_kind() {
        let dir = tempfile::tempdir().unwrap();
        let line = dir.path().join("line.png");
        let series = vec![
            Series {
                name: "train".into(),
                points: vec![(1.0, 0.9), (2.0, 0.5), (3.0, 0.3)],
            },
            Series {
                name: "validation".into(),
                points: vec![(1.0, 1.0), (2.0, 0.7), (3.0, 0.6)],
            },
        ];
        line_chart(&line, "loss", XAxis::Whole("epoch"), "loss", &series).unwrap();
        assert!(is_png(&line));
        let bars = dir.path().join("bars.png");
        let categories = vec!["c=1".to_string(), "c=8".to_string()];
        bar_chart(
            &bars,
            "throughput",
            "requests/s",
            &categories,
            &[
                ("a".into(), vec![10.0, 20.0]),
                ("b".into(), vec![5.0, 30.0]),
            ],
        )
        .unwrap();
        assert!(is_png(&bars));
        let heat = dir.path().join("confusion.png");
        let classes = vec!["a".to_string(), "b".to_string()];
        confusion_matrix(&heat, "confusion", &classes, &[vec![5, 1], vec![0, 4]]).unwrap();
        assert!(is_png(&heat));
    }

    fn ticks(axis: XAxis, xs: std::ops::RangeInclusive<u32>) -> Vec<String> {
        let range = extent(xs.map(f64::from)).unwrap();
        x_ticks(axis, &range)
            .into_iter()
            .map(x_tick_label)
            .collect()
    }

    #[test]
    fn epoch_axes_tick_whole_numbers() {
        let whole = |labels: &[&str]| labels.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ticks(XAxis::Whole("epoch"), 1..=10),
            whole(&["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"])
        );
        assert_eq!(
            ticks(XAxis::Whole("epoch"), 1..=30),
            whole(&["5", "10", "15", "20", "25", "30"])
        );
        assert_eq!(ticks(XAxis::Whole("epoch"), 1..=1), whole(&["1"]));
        // Three epochs: a continuous axis would tick 1.5 and 2.5; whole epochs do not.
        assert_eq!(ticks(XAxis::Whole("epoch"), 1..=3), whole(&["1", "2", "3"]));
        assert!(ticks(XAxis::Continuous("seconds"), 1..=3).contains(&"1.2".to_string()));
    }

    #[test]
    fn confusion_matrix_has_a_colour_legend_and_row_percentages() {
        assert_eq!(cell_text(45, 51), ("45".to_string(), "88.2 %".to_string()));
        assert_eq!(cell_text(0, 0), ("0".to_string(), "–".to_string()));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confusion.png");
        let classes = vec!["a".to_string(), "b".to_string()];
        // The top-right cell is the lightest (1 of a largest 8): the legend must not be it.
        confusion_matrix(&path, "confusion", &classes, &[vec![8, 1], vec![2, 6]]).unwrap();
        let png = image::open(&path).unwrap().to_rgb8();
        assert_eq!(png.dimensions(), CONFUSION_SIZE);
        let (x, width, top, bottom) = LEGEND_BAR;
        let column = (CONFUSION_SIZE.0 - LEGEND_STRIP) as i32 + x + width / 2;
        let pixel = |y: i32| png.get_pixel(column as u32, y as u32).0;
        let darkest = shade(1.0);
        let top_pixel = pixel(top + 2);
        assert!(
            top_pixel
                .iter()
                .zip([darkest.0, darkest.1, darkest.2])
                .all(|(got, want)| got.abs_diff(want) <= 2),
            "the bar's top is the largest count's shade: {top_pixel:?}"
        );
        assert_eq!(
            pixel(bottom - 2),
            [255, 255, 255],
            "the bar's bottom is zero's shade"
        );
        let middle = pixel((top + bottom) / 2);
        assert!(
            middle[0] > darkest.0 + 80 && middle[0] < 200,
            "the bar runs through the shades between: {middle:?}"
        );
    }
}
