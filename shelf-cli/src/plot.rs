//! The `--plot` chart of `shelf bench`: ops/s per workload, one bar per
//! row, on a log axis (the rates span several orders of magnitude, so a
//! linear axis would flatten the slow rows to nothing). Higher is better,
//! and the chart says so.
//!
//! Colours follow the engine, not the row's position: every row of one
//! backend has its hue in every workload group (its own protocol in the
//! full colour, its pickle row lighter, its raw engine darker), and the
//! CPython rows are greys, so a backend is found at a glance in each group.

use std::path::Path;

use plotters::prelude::*;

use crate::error::CliError;
use crate::report::{BackendResult, Report, RowKind};

/// Hues that stay apart for the colour-blind (Okabe-Ito), one per engine.
const ENGINES: &[(&str, RGBColor)] = &[
    ("redb", RGBColor(0, 114, 178)),
    ("sled", RGBColor(230, 159, 0)),
    ("sqlite", RGBColor(0, 158, 115)),
    ("gnu", RGBColor(204, 121, 167)),
    ("dumb", RGBColor(86, 180, 233)),
    ("dir", RGBColor(213, 94, 0)),
    ("mmappickle", RGBColor(240, 228, 66)),
    ("redis", RGBColor(117, 62, 160)),
    ("python-dumb", RGBColor(200, 200, 200)),
    ("python-gnu", RGBColor(130, 130, 130)),
    ("python-sqlite3", RGBColor(60, 60, 60)),
];

/// Hues for engines not in [`ENGINES`] (a backend added later).
const SPARE: &[RGBColor] = &[RGBColor(140, 86, 75), RGBColor(23, 190, 207), RGBColor(188, 189, 34)];

fn blend(c: RGBColor, toward: u8, amount: f64) -> RGBColor {
    let mix = |x: u8| (f64::from(x) + (f64::from(toward) - f64::from(x)) * amount).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// The colour of row `i` of `r`: its engine's hue, lighter for a pickle
/// row beside the backend's own protocol, darker for the raw engine.
fn colour(r: &Report, i: usize) -> RGBColor {
    let row = &r.results[i];
    let base = ENGINES.iter().find(|(e, _)| *e == row.engine).map(|(_, c)| *c).unwrap_or_else(|| {
        // A stable spare per unknown engine: its first appearance.
        let unknown: Vec<&str> = r
            .results
            .iter()
            .map(|x| x.engine.as_str())
            .filter(|e| !ENGINES.iter().any(|(k, _)| k == e))
            .collect();
        let at = unknown.iter().position(|e| *e == row.engine).unwrap_or(0);
        SPARE[at % SPARE.len()]
    });
    let second_shelf_row =
        r.results[..i].iter().any(|x: &BackendResult| x.kind == RowKind::Shelf && x.backend == row.backend);
    match row.kind {
        RowKind::Raw | RowKind::Reference => blend(base, 0, 0.45),
        RowKind::Shelf if second_shelf_row => blend(base, 255, 0.55),
        _ => base,
    }
}

/// Draws the chart to `path` as SVG.
pub fn bar_chart(r: &Report, workloads: &[String], path: &Path) -> Result<(), CliError> {
    draw(r, workloads, path).map_err(|e| CliError::env(format!("cannot draw {}: {e}", path.display())))
}

fn draw(r: &Report, workloads: &[String], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let rates: Vec<f64> = r
        .results
        .iter()
        .flat_map(|b| b.timings.iter().filter(|t| workloads.contains(&t.workload)).map(|t| t.ops_per_sec))
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rates.iter().copied().fold(0.0, f64::max);
    // Whole decades around the data, so the log axis has round labels.
    let (lo, hi) = if rates.is_empty() {
        (1.0, 10.0)
    } else {
        (10f64.powf(lo.log10().floor()), 10f64.powf(hi.log10().ceil().max(lo.log10().floor() + 1.0)))
    };
    let nb = r.results.len().max(1);
    let nw = workloads.len().max(1);

    let legend_rows = r.results.len() as u32;
    let height = 620u32.max(120 + 22 * legend_rows);
    let root = SVGBackend::new(path, (1600, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot_area, legend_area) = root.split_horizontally(1330);
    let title = format!(
        "shelf bench: ops/s per workload, higher is better (n={}, {} B values, {} build, {} cores; log scale)",
        r.n, r.value_size, r.build, r.cores
    );
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, ("sans-serif", 19))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..nw as f64, (lo..hi).log_scale())?;
    let names = workloads.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(nw * 2 + 1)
        .x_label_formatter(&|x| {
            // A label only at the middle of each group.
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 1e-6 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("operations per second (higher is better)")
        .y_label_formatter(&|y| {
            if *y >= 1e6 {
                format!("{:.0}M", y / 1e6)
            } else if *y >= 1e3 {
                format!("{:.0}k", y / 1e3)
            } else {
                format!("{y:.0}")
            }
        })
        .label_style(("sans-serif", 15))
        .draw()?;

    let group = 0.86;
    let width = group / nb as f64;
    for (bi, b) in r.results.iter().enumerate() {
        let color = colour(r, bi);
        let bars: Vec<Rectangle<(f64, f64)>> = workloads
            .iter()
            .enumerate()
            .filter_map(|(wi, w)| {
                let t = b.timing(w)?;
                let x0 = wi as f64 + (1.0 - group) / 2.0 + bi as f64 * width;
                Some(Rectangle::new([(x0, lo), (x0 + width * 0.9, t.ops_per_sec.max(lo))], color.filled()))
            })
            .collect();
        chart.draw_series(bars)?;
    }

    // The legend, beside the chart so it never hides a bar: one line per
    // row, in the order of the bars within each group.
    let text = ("sans-serif", 15).into_font();
    legend_area.draw(&Text::new("rows, left to right", (10, 40), text.clone()))?;
    for (bi, b) in r.results.iter().enumerate() {
        let y = 66 + 22 * bi as i32;
        let color = colour(r, bi);
        legend_area.draw(&Rectangle::new([(10, y - 7), (26, y + 7)], color.filled()))?;
        legend_area.draw(&Rectangle::new([(10, y - 7), (26, y + 7)], BLACK.mix(0.3)))?;
        let label = match b.kind {
            RowKind::Shelf => format!("{} ({})", b.backend, b.protocol),
            _ => b.backend.clone(),
        };
        legend_area.draw(&Text::new(label, (34, y - 8), text.clone()))?;
    }
    root.present()?;
    Ok(())
}
