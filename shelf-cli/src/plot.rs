//! The `--plot` chart of `shelf bench`: ops/s per workload, one bar per
//! backend, on a log axis (the rates span several orders of magnitude, so a
//! linear axis would flatten the slow rows to nothing).

use std::path::Path;

use plotters::prelude::*;

use crate::error::CliError;
use crate::report::Report;

/// Colours that stay apart for the colour-blind (Okabe-Ito).
const PALETTE: &[RGBColor] = &[
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

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

    let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "shelf bench: ops/s per workload (n={}, {} B values, {} build, {} cores; log scale)",
        r.n, r.value_size, r.build, r.cores
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
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
        .y_desc("operations per second")
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

    let group = 0.8;
    let width = group / nb as f64;
    for (bi, b) in r.results.iter().enumerate() {
        let color = PALETTE[bi % PALETTE.len()];
        let bars: Vec<Rectangle<(f64, f64)>> = workloads
            .iter()
            .enumerate()
            .filter_map(|(wi, w)| {
                let t = b.timings.iter().find(|t| &t.workload == w)?;
                let x0 = wi as f64 + (1.0 - group) / 2.0 + bi as f64 * width;
                Some(Rectangle::new([(x0, lo), (x0 + width * 0.92, t.ops_per_sec.max(lo))], color.filled()))
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(format!("{} ({})", b.backend, b.protocol))
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present()?;
    Ok(())
}
