//! What the stem sees of the first frame of val episodes through the benchmark's cameras,
//! against the ideal heightmap: how many objects it finds, and for each ideal object the
//! nearest one seen through the cameras — centroid offset, colour shift, size and top
//! height. Where the shipped checkpoint's fall through the cameras comes from.
//!
//! ```sh
//! cargo run --release --example seen -- 5
//! ```

use loho_models::segment::Object;
use loho_models::Config;
use loho_sim::rgbd::Rig;
use loho_sim::{Env, Split, ALL_TASKS};

fn main() -> anyhow::Result<()> {
    let per_task: u64 = std::env::args().nth(1).map_or(Ok(5), |s| s.parse())?;
    let cfg = Config::tiny(100).stem;
    let objects = |env: &Env| -> anyhow::Result<Vec<Object>> {
        let hm = env.observe();
        Ok(cfg.objects(&hm.rgb_bytes(), &hm.height)?)
    };
    println!("task  objects ideal→cameras  offset px  |Δrgb|  size ×  Δtop mm  (means over matched objects)");
    for task in ALL_TASKS {
        let (mut n_ideal, mut n_seen, mut matched) = (0, 0, 0);
        let (mut off, mut drgb, mut size, mut dtop) = (0.0, 0.0, 0.0, 0.0);
        for k in 0..per_task {
            let env = Env::new(task, Split::Val, Split::Val.seed(k))?;
            let ideal = objects(&env)?;
            let seen = objects(&env.with_cameras(Rig::benchmark()))?;
            n_ideal += ideal.len();
            n_seen += seen.len();
            for o in &ideal {
                let d = |s: &Object| {
                    ((s.centroid.0 - o.centroid.0).powi(2) + (s.centroid.1 - o.centroid.1).powi(2))
                        .sqrt()
                };
                // A bowl's floor and rim share a centroid: the nearest in height (pixels of
                // 3.125 mm) as well.
                let d3 = |s: &Object| d(s) + (s.top_z - o.top_z).abs() / 0.003125;
                let Some(s) = seen.iter().min_by(|a, b| d3(a).total_cmp(&d3(b))) else {
                    continue;
                };
                if d(s) > 8.0 {
                    continue;
                }
                matched += 1;
                off += d(s);
                drgb += (0..3)
                    .map(|c| (s.mean_rgb[c] - o.mean_rgb[c]).powi(2))
                    .sum::<f32>()
                    .sqrt();
                size += s.pixels as f32 / o.pixels as f32;
                dtop += (s.top_z - o.top_z) * 1000.0;
            }
        }
        let m = matched.max(1) as f32;
        println!(
            "{}     {:>5.1} → {:<5.1} ({:>3.0} % matched)  {:>5.1}  {:>6.1}  {:>5.2}  {:>+7.1}",
            task.code(),
            n_ideal as f32 / per_task as f32,
            n_seen as f32 / per_task as f32,
            100.0 * matched as f32 / n_ideal.max(1) as f32,
            off / m,
            drgb / m,
            size / m,
            dtop / m
        );
    }
    Ok(())
}
