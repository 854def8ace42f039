//! The paper's figures from a [`View`]: Figure 2 (ARP vs ε, a panel per step rule, a line per
//! direction, the mean over the clean-trained models with a band from their minimum to their
//! maximum), Figure 1 (per-task ARP bars per direction) and Figure 4 (transferability of each
//! Single-x vs the number of shared backbone stages).
use super::plot::{FAMILY, Figure, err, save};
use super::view::{View, direction_name, rule_name, single_task, task_name};
use crate::attack::DirectionSpec;
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// The colour of the direction stored as `d` ([`DirectionSpec::colour`]; grey when unknown).
pub fn direction_color(d: &str) -> RGBColor {
    let [r, g, b] = d.parse::<DirectionSpec>().map_or([127, 127, 127], |d| d.colour());
    RGBColor(r, g, b)
}

/// One line: its label, colour and points (x, mean, lowest, highest).
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// One panel of lines.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub lines: Vec<Line>,
}

/// Line panels side by side (Figures 2 and 4).
#[derive(Debug, Clone)]
pub struct LinePlot {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub panels: Vec<Panel>,
    /// Fill the band between each line's lowest and highest values.
    pub band: bool,
    /// Names of x values (`None`: the numbers).
    pub x_names: Option<fn(f64) -> String>,
}

fn range(values: impl Iterator<Item = f64>, floor_zero: bool) -> (f64, f64) {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let lo = if floor_zero { lo.min(0.0) } else { lo };
    let pad = ((hi - lo) * 0.08).max(1e-3);
    (if floor_zero && lo >= 0.0 { 0.0 } else { lo - pad }, hi + pad)
}

/// The series labels of `chart` in one boxed legend at `position` (the same look in every figure).
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FAMILY, 11))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)
}

impl Figure for LinePlot {
    fn size(&self) -> (u32, u32) {
        ((60 + 420 * self.panels.len().max(1) as u32).max(720), 440)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        let root = root.titled(&self.title, (FAMILY, 18)).map_err(err)?;
        let areas = root.split_evenly((1, self.panels.len().max(1)));
        for (i, (area, panel)) in areas.iter().zip(&self.panels).enumerate() {
            let points = || panel.lines.iter().flat_map(|l| l.points.iter());
            let (x0, x1) = range(points().map(|p| p.0), false);
            let (y0, y1) = range(points().flat_map(|p| [p.1, p.2, p.3]), true);
            let mut builder = ChartBuilder::on(area);
            if !panel.title.is_empty() {
                builder.caption(&panel.title, (FAMILY, 15));
            }
            let mut chart =
                builder.margin(10).x_label_area_size(40).y_label_area_size(48).build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
            let names = self.x_names;
            let format = move |x: &f64| match names {
                Some(f) => f(*x),
                None => format!("{x}"),
            };
            chart
                .configure_mesh()
                .x_desc(&self.x_desc)
                .y_desc(&self.y_desc)
                .label_style((FAMILY, 12))
                .axis_desc_style((FAMILY, 13))
                .x_label_formatter(&format)
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(err)?;
            if self.band {
                for line in panel.lines.iter().filter(|l| l.points.len() > 1) {
                    let mut poly: Vec<(f64, f64)> = line.points.iter().map(|p| (p.0, p.2)).collect();
                    poly.extend(line.points.iter().rev().map(|p| (p.0, p.3)));
                    chart.draw_series(std::iter::once(Polygon::new(poly, line.color.mix(0.07).filled()))).map_err(err)?;
                }
            }
            for line in &panel.lines {
                let color = line.color;
                chart
                    .draw_series(LineSeries::new(line.points.iter().map(|p| (p.0, p.1)), color.stroke_width(2)))
                    .map_err(err)?
                    .label(&line.label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
                chart.draw_series(line.points.iter().map(|p| Circle::new((p.0, p.1), 3, color.filled()))).map_err(err)?;
            }
            // One legend (the first panel's): every panel has the same lines.
            if i == 0 {
                legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
            }
        }
        Ok(())
    }
}

/// Grouped bars (Figure 1): per group (task) one bar per series (direction).
#[derive(Debug, Clone)]
pub struct Bars {
    pub title: String,
    pub y_desc: String,
    pub groups: Vec<String>,
    pub series: Vec<(String, RGBColor, Vec<Option<f64>>)>,
}

impl Figure for Bars {
    fn size(&self) -> (u32, u32) {
        (160 + 130 * self.groups.len() as u32, 440)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        let n = self.groups.len().max(1) as f64;
        let (y0, y1) = range(self.series.iter().flat_map(|s| s.2.iter().flatten().copied()), true);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FAMILY, 17))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5..n - 0.5, y0..y1)
            .map_err(err)?;
        let groups = self.groups.clone();
        let name = move |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 { groups.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
        };
        chart
            .configure_mesh()
            .y_desc(&self.y_desc)
            .label_style((FAMILY, 12))
            .axis_desc_style((FAMILY, 13))
            .x_labels(self.groups.len() + 1)
            .x_label_formatter(&name)
            .disable_x_mesh()
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        let k = self.series.len().max(1) as f64;
        let width = 0.8 / k;
        for (s, (label, color, values)) in self.series.iter().enumerate() {
            let color = *color;
            let rects = values.iter().enumerate().filter_map(|(g, v)| {
                let v = (*v)?;
                let x = g as f64 - 0.4 + s as f64 * width;
                Some(Rectangle::new([(x, 0.0), (x + width * 0.9, v)], color.filled()))
            });
            chart
                .draw_series(rects)
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}

fn stats(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    Some((mean, v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(f64::NEG_INFINITY, f64::max)))
}

/// The rule a one-rule figure shows: APGD as in the paper, else PGD, else the first measured.
fn preferred_rule(rules: &[String]) -> Option<String> {
    ["apgd", "pgd"].iter().find(|r| rules.iter().any(|x| x == *r)).map(|r| r.to_string()).or_else(|| rules.first().cloned())
}

/// Figure 2: ARP vs ε per rule, mean over the clean-trained models with their spread.
pub fn arp_vs_eps(view: &View) -> LinePlot {
    let models = view.clean_models();
    let panels = view
        .rules
        .iter()
        .map(|rule| {
            let lines = view
                .directions
                .iter()
                .filter_map(|d| {
                    let points: Vec<(f64, f64, f64, f64)> = view
                        .eps
                        .iter()
                        .filter_map(|&e| {
                            let v: Vec<f64> = models.iter().filter_map(|&m| view.point(m, rule, d, e).map(|p| p.arp)).collect();
                            stats(&v).map(|(mean, lo, hi)| (e, mean, lo, hi))
                        })
                        .collect();
                    (!points.is_empty()).then(|| Line { label: direction_name(d), color: direction_color(d), points })
                })
                .collect();
            Panel { title: rule_name(rule), lines }
        })
        .collect();
    LinePlot {
        title: format!("ARP vs ε on {} — mean over {} models, band = min…max", view.dataset, models.len()),
        x_desc: "ε (grey levels of 255)".into(),
        y_desc: "ARP (%)".into(),
        panels,
        band: true,
        x_names: None,
    }
}

/// Figure 1: per-task ARP of every direction of one rule at `eps`, mean over the clean-trained
/// models; the last group is the overall ARP.
pub fn per_task_bars(view: &View, eps: f64) -> Option<Bars> {
    let rule = preferred_rule(&view.rules_at(eps))?;
    let models = view.clean_models();
    let mut groups: Vec<String> = view.tasks.iter().map(|&t| task_name(t)).collect();
    groups.push("ARP".into());
    let series = view
        .directions_of(&rule, eps)
        .into_iter()
        .map(|d| {
            let points: Vec<_> = models.iter().filter_map(|&m| view.point(m, &rule, &d, eps)).collect();
            let mut values: Vec<Option<f64>> = view
                .tasks
                .iter()
                .map(|&t| stats(&points.iter().filter_map(|p| p.per_task.get(t).copied()).collect::<Vec<_>>()).map(|s| s.0))
                .collect();
            values.push(stats(&points.iter().map(|p| p.arp).collect::<Vec<_>>()).map(|s| s.0));
            (direction_name(&d), direction_color(&d), values)
        })
        .collect();
    Some(Bars {
        title: format!("Per-task ARP, {} at ε = {}/255, mean over {} models", rule_name(&rule), crate::attack::fmt_eps(eps), models.len()),
        y_desc: "ARP (%)".into(),
        groups,
        series,
    })
}

fn sharing_name(x: f64) -> String {
    let k = x.round();
    if (x - k).abs() > 1e-6 || !(0.0..=5.0).contains(&k) {
        return String::new();
    }
    match k as usize {
        0 => "IND/0L".into(),
        5 => "AS/5L".into(),
        k => format!("{k}L"),
    }
}

/// Figure 4: transferability of each Single-x (one rule, at `eps`) vs the number of shared
/// backbone stages, the mean over clean-trained models of the same sharing.
pub fn transfer_vs_sharing(view: &View, eps: f64) -> Option<LinePlot> {
    let rules: Vec<String> =
        view.rules_at(eps).into_iter().filter(|r| view.directions_of(r, eps).iter().any(|d| single_task(d).is_some())).collect();
    let rule = preferred_rule(&rules)?;
    let models = view.clean_models();
    let mut levels: Vec<usize> = models.iter().map(|&m| view.models[m].row.shared_stages).collect();
    levels.sort();
    levels.dedup();
    let lines = view
        .directions_of(&rule, eps)
        .into_iter()
        .filter(|d| single_task(d).is_some())
        .map(|d| {
            let points = levels
                .iter()
                .filter_map(|&k| {
                    let v: Vec<f64> = models
                        .iter()
                        .filter(|&&m| view.models[m].row.shared_stages == k)
                        .filter_map(|&m| view.point(m, &rule, &d, eps).and_then(|p| p.transfer))
                        .collect();
                    stats(&v).map(|(mean, lo, hi)| (k as f64, mean, lo, hi))
                })
                .collect();
            Line { label: direction_name(&d), color: direction_color(&d), points }
        })
        .collect();
    Some(LinePlot {
        title: format!("Transferability vs sharing, {} Single-x at ε = {}/255", rule_name(&rule), crate::attack::fmt_eps(eps)),
        x_desc: "shared backbone stages".into(),
        y_desc: "transferability".into(),
        panels: vec![Panel { title: String::new(), lines }],
        band: false,
        x_names: Some(sharing_name),
    })
}

/// Writes Figures 2, 1 and 4 (PNG and SVG) into `out`; returns the files written.
///
/// # Errors
/// Drawing or I/O errors.
pub fn write_figures(view: &View, eps: f64, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut written = save(&arp_vs_eps(view), &out.join("fig2_arp_vs_eps"))?;
    if let Some(f) = per_task_bars(view, eps) {
        written.extend(save(&f, &out.join("fig1_per_task_arp"))?);
    }
    if let Some(f) = transfer_vs_sharing(view, eps) {
        written.extend(save(&f, &out.join("fig4_transfer_vs_sharing"))?);
    }
    Ok(written)
}
