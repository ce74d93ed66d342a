//! The results: a table on stdout, JSON, Markdown and an SVG chart.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::stats::{Better, Figure};

/// One scenario's figures, with the subject its ratios are against.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// A short name (`lifecycle`, `throughput`, ...).
    pub id: String,
    /// What it measures.
    pub title: String,
    /// The unit of every figure.
    pub unit: String,
    /// Which way is better.
    pub better: Better,
    /// The subject ratios are computed against.
    pub reference: String,
    /// The goal the project set, if any.
    pub goal: Option<String>,
    /// The figures, one per subject.
    pub figures: Vec<Figure>,
}

impl Scenario {
    /// An empty scenario.
    pub fn new(id: &str, title: &str, unit: &str, better: Better, reference: &str) -> Scenario {
        Scenario {
            id: id.into(),
            title: title.into(),
            unit: unit.into(),
            better,
            reference: reference.into(),
            goal: None,
            figures: Vec::new(),
        }
    }

    /// With a goal.
    pub fn goal(mut self, goal: &str) -> Scenario {
        self.goal = Some(goal.into());
        self
    }

    /// Adds a figure.
    pub fn push(&mut self, figure: Figure) {
        self.figures.push(figure);
    }

    /// Each figure's median over the reference's.
    pub fn ratio(&self, figure: &Figure) -> Option<f64> {
        let reference = self.figures.iter().find(|f| f.subject == self.reference)?;
        Some(figure.median / reference.median)
    }
}

/// The machine and the versions, as every result states them.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `uname -r`.
    pub kernel: String,
    /// Online CPUs.
    pub cpus: usize,
    /// The host's cgroup mode.
    pub cgroups: String,
    /// Tool versions: crun, podman, containerd, libcrun, ...
    pub versions: Vec<(String, String)>,
    /// When the suite ran (RFC 3339, UTC).
    pub date: String,
}

/// Everything one run of the suite measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where.
    pub machine: Machine,
    /// What.
    pub scenarios: Vec<Scenario>,
    /// Scenarios that could not run, and why.
    pub failed: Vec<(String, String)>,
}

impl Report {
    /// The results as Markdown tables (also printed to stdout).
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Measured {} on Linux {}, {} CPUs, cgroups {}.\n",
            m.date, m.kernel, m.cpus, m.cgroups
        );
        for (tool, version) in &m.versions {
            let _ = writeln!(out, "- {tool}: {version}");
        }
        for s in &self.scenarios {
            let better = match s.better {
                Better::Lower => "lower is better",
                Better::Higher => "higher is better",
            };
            let _ = writeln!(out, "\n### {} ({}, {better})\n", s.title, s.unit);
            if let Some(goal) = &s.goal {
                let _ = writeln!(out, "Goal: {goal}.\n");
            }
            let _ = writeln!(
                out,
                "| subject | median | p99 | runs | ratio to {} |\n|---|---:|---:|---:|---:|",
                s.reference
            );
            for f in &s.figures {
                let p99 = f.p99.map_or("".into(), |v| format!("{v:.2}"));
                let ratio = s.ratio(f).map_or("".into(), |r| format!("{r:.2}×"));
                let _ = writeln!(
                    out,
                    "| {} | {:.2} | {p99} | {} | {ratio} |",
                    f.subject, f.median, f.runs
                );
            }
        }
        for (id, why) in &self.failed {
            let _ = writeln!(out, "\n### {id}: could not run\n\n{why}");
        }
        out
    }

    /// Writes `results.json`, `results.md` and `results.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("results.json"), serde_json::to_vec_pretty(self)?)?;
        std::fs::write(dir.join("results.md"), self.markdown())?;
        self.chart(&dir.join("results.svg"))
    }

    /// One horizontal bar chart per scenario, two per row.
    fn chart(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let rows = self.scenarios.len().div_ceil(2).max(1);
        let root = SVGBackend::new(path, (1400, 340 * rows as u32)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((rows, 2));
        for (panel, s) in panels.iter().zip(&self.scenarios) {
            let n = s.figures.len();
            let max = s.figures.iter().map(|f| f.median).fold(0.0, f64::max) * 1.25;
            let labels: Vec<String> = s.figures.iter().map(|f| f.subject.clone()).collect();
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("{} ({})", s.title, s.unit), ("sans-serif", 15))
                .margin(12)
                .x_label_area_size(28)
                .y_label_area_size(230)
                .build_cartesian_2d(0.0..max.max(f64::MIN_POSITIVE), (0..n).into_segmented())?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(n)
                .y_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                    _ => String::new(),
                })
                .draw()?;
            chart.draw_series(s.figures.iter().enumerate().map(|(i, f)| {
                let colour = if f.subject.starts_with("libcrun-shim")
                    || f.subject.starts_with("crun-shim")
                {
                    RGBColor(0x2a, 0x6f, 0xdb)
                } else {
                    RGBColor(0x9a, 0x9a, 0x9a)
                };
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (f.median, SegmentValue::Exact(i + 1)),
                    ],
                    colour.filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                bar
            }))?;
            chart.draw_series(s.figures.iter().enumerate().map(|(i, f)| {
                Text::new(
                    format!("{:.1}", f.median),
                    (f.median, SegmentValue::CenterOf(i)),
                    ("sans-serif", 12),
                )
            }))?;
        }
        root.present()?;
        Ok(())
    }
}
