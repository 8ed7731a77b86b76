//! Compares a checkpoint with the oracle on the first frame of val episodes: does it write
//! the oracle's sub-task, and how far (cm, in x-y) are its pick and place from the oracle's
//! when it is given the oracle's sub-task? A quick look at what a training run has learned,
//! before a full `loho eval`.
//!
//! ```sh
//! cargo run --release --example probe -- runs/train/loho-tiny 2
//! ```
//!
//! Sampling (`head.samples`, `head.noise_scale`) is the checkpoint's `config.json`'s.

use std::path::Path;

use loho_core::policy::Plan;
use loho_core::pose::EePose;
use loho_models::{Keypose, Vla};
use loho_sim::{Decision, Env, Oracle, Policy, Split, ALL_TASKS};

fn xy_cm(k: &Keypose, p: &EePose) -> f64 {
    ((k.x - p.x).powi(2) + (k.y - p.y).powi(2)).sqrt() * 100.0
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "runs/train/loho-tiny".into());
    let per_task: u64 = args.next().map_or(Ok(2), |s| s.parse())?;
    let mut vla = Vla::load(Path::new(&dir), 0, &candle_core::Device::Cpu)?;
    let (mut same, mut n, mut pick, mut place) = (0, 0, 0.0, 0.0);
    for task in ALL_TASKS {
        for k in 0..per_task {
            let env = Env::new(task, Split::Val, Split::Val.seed(k))?;
            let obs = env.observe();
            let (rgb, h) = (obs.rgb_bytes(), obs.height.clone());
            let Decision::Act(oracle) = Oracle.decide(&env.observation(&rgb, &obs))? else {
                continue;
            };
            vla.start(env.instruction())?;
            let written = vla.decide(&rgb, &h, &Plan::Write)?.subtask;
            let told = vla.decide(&rgb, &h, &Plan::Keep(oracle.subtask.clone()))?;
            let (dp, dq) = (
                xy_cm(&told.keyposes[0], &oracle.pick.pose()),
                xy_cm(&told.keyposes[1], &oracle.place.pose()),
            );
            println!(
                "{} seed {}: pick {dp:.1} cm, place {dq:.1} cm off\n  oracle: {}\n  model:  {written}",
                task.code(),
                env.episode.seed,
                oracle.subtask
            );
            n += 1;
            same += usize::from(written == oracle.subtask);
            pick += dp;
            place += dq;
        }
    }
    let n = n.max(1);
    println!(
        "{same}/{n} sub-tasks as the oracle's; mean pick {:.1} cm, place {:.1} cm off",
        pick / n as f64,
        place / n as f64
    );
    Ok(())
}
