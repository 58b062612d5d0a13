//! The loss curve, drawn as an SVG beside the checkpoint: training loss per iteration and
//! the evaluated train/validation losses.

use crate::error::{Result, TrainError};
use plotters::prelude::*;
use std::path::Path;

/// One curve: a label and (iteration, loss) points.
pub struct Curve<'a> {
    pub label: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// Draws `curves` into an SVG file at `path`.
pub fn loss_curve(path: &Path, title: &str, curves: &[Curve<'_>]) -> Result<()> {
    let all = || curves.iter().flat_map(|c| c.points.iter());
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in all() {
        if y.is_finite() {
            x_max = x_max.max(x);
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
    }
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(0.01);
    let err = |e: &dyn std::fmt::Display| TrainError::Plot(e.to_string());
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..x_max, (y_min - pad)..(y_max + pad))
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc("iteration").y_desc("loss").draw().map_err(|e| err(&e))?;
    let colors = [RGBColor(120, 144, 200), RED, BLUE, GREEN];
    for (i, c) in curves.iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(c.points.iter().copied().filter(|p| p.1.is_finite()), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(c.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
