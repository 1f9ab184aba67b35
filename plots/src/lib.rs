//! PNG charts for sprig's reports: line charts (training curves, memory over time), grouped bar
//! charts (load-test throughput and latency) and a confusion-matrix heatmap. Text is drawn with
//! the bundled DejaVu Sans (`assets/`, Bitstream Vera license), so no system fonts are needed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
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

fn padded_range(values: impl Iterator<Item = f64> + Clone) -> std::ops::Range<f64> {
    let min = values.clone().fold(f64::INFINITY, f64::min);
    let max = values.fold(f64::NEG_INFINITY, f64::max);
    if !min.is_finite() || !max.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((max - min) * 0.05).max(1e-9);
    (min - pad).min(0.0f64.max(min - pad))..max + pad
}

/// Line chart of one or more series.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result {
    register_font();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(path, e))?;
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(padded_range(xs.clone()), padded_range(ys.clone()))
        .map_err(|e| error(path, e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
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

/// Confusion matrix (`matrix[actual][predicted]`) as a heatmap with counts.
pub fn confusion_matrix(
    path: &Path,
    title: &str,
    classes: &[String],
    matrix: &[Vec<u64>],
) -> Result {
    register_font();
    let n = classes.len();
    let root = BitMapBackend::new(path, (760, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(path, e))?;
    let max = matrix.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let labels = classes.to_vec();
    let y_labels = classes.to_vec();
    let mut chart = ChartBuilder::on(&root)
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
        .y_desc("actual")
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| error(path, e))?;
    for (actual, row) in matrix.iter().enumerate() {
        for (predicted, &count) in row.iter().enumerate() {
            let shade = count as f64 / max;
            let fill = RGBColor(
                255 - (200.0 * shade) as u8,
                255 - (120.0 * shade) as u8,
                255 - (40.0 * shade) as u8,
            );
            let top = (n - actual) as f64;
            let x = predicted as f64;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x, top - 1.0), (x + 1.0, top)],
                    fill.filled(),
                )))
                .map_err(|e| error(path, e))?;
            let text_color = if shade > 0.6 { WHITE } else { BLACK };
            chart
                .draw_series(std::iter::once(Text::new(
                    count.to_string(),
                    (x + 0.45, top - 0.55),
                    (FONT, 22).into_font().color(&text_color),
                )))
                .map_err(|e| error(path, e))?;
        }
    }
    root.present().map_err(|e| error(path, e))
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
        line_chart(&line, "loss", "epoch", "loss", &series).unwrap();
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
}
