//! `loho bench export`: exporting oracle demonstrations as a LeRobotDataset, from loho's
//! format and directly from `gen-data`, against generating them, in one run.

use std::time::Instant;

use anyhow::Result;
use loho_sim::ALL_TASKS;
use serde::Serialize;

use crate::gendata::DataFormat;
use crate::gendata::{self, GenArgs};

#[derive(Debug, Serialize)]
pub struct ExportBench {
    pub episodes: usize,
    pub decisions: usize,
    /// `gen-data` into loho's format (the baseline), seconds.
    pub generate_s: f64,
    /// `export lerobot` of that dataset, seconds.
    pub export_s: f64,
    /// `gen-data --format lerobot`, seconds.
    pub generate_lerobot_s: f64,
    /// export_s ÷ generate_s.
    pub export_ratio: f64,
}

pub fn export(episodes: usize) -> Result<ExportBench> {
    let dir = std::env::temp_dir().join(format!("loho-bench-export-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let per_task = episodes.div_ceil(ALL_TASKS.len());
    let args = |out: &str, format| GenArgs::oracle(dir.join(out), &ALL_TASKS, per_task, format);
    let timed = |f: &dyn Fn() -> Result<usize>| -> Result<(usize, f64)> {
        let t = Instant::now();
        let n = f()?;
        Ok((n, t.elapsed().as_secs_f64()))
    };
    let run = || -> Result<ExportBench> {
        let (decisions, generate_s) =
            timed(&|| gendata::generate(&args("loho", DataFormat::Loho)))?;
        let (_, export_s) = timed(&|| {
            Ok(crate::export::lerobot(&[dir.join("loho")], &dir.join("exported"))?.frames)
        })?;
        let (_, generate_lerobot_s) =
            timed(&|| gendata::generate(&args("direct", DataFormat::Lerobot)))?;
        Ok(ExportBench {
            episodes: per_task * ALL_TASKS.len(),
            decisions,
            generate_s,
            export_s,
            generate_lerobot_s,
            export_ratio: export_s / generate_s,
        })
    };
    let r = run();
    std::fs::remove_dir_all(&dir).ok();
    r
}

pub fn print(r: &ExportBench) {
    println!(
        "{} oracle episodes ({} decisions), {} threads:",
        r.episodes,
        r.decisions,
        crate::args::jobs(None)
    );
    println!("  gen-data (loho format)      {:>7.2} s", r.generate_s);
    println!(
        "  export lerobot of it        {:>7.2} s  ({:.2}× of generating)",
        r.export_s, r.export_ratio
    );
    println!(
        "  gen-data --format lerobot   {:>7.2} s",
        r.generate_lerobot_s
    );
}
