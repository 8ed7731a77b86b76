//! Whole val episodes in which a checkpoint is *told* each step's sub-task (the oracle's
//! words, `Plan::Keep`) and only chooses the pick and place: success per task, beside the
//! same episodes where it writes its own words. Splits a task's failures into reading
//! (which sub-task) and acting (where to pick and place).
//!
//! ```sh
//! cargo run --release --example told -- models/checkpoints/loho-heldout F,G,H,I,J,K 20
//! ```

use std::path::Path;

use loho_core::policy::Plan;
use loho_models::{ModelPolicy, Vla};
use loho_sim::{Action, Decision, Env, Oracle, Split, TaskId};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "models/checkpoints/loho-tiny".into());
    let tasks = TaskId::parse_list(&args.next().unwrap_or_else(|| "all".into()))?;
    let per_task: u64 = args.next().map_or(Ok(10), |s| s.parse())?;
    for task in tasks {
        let (mut told, mut own) = (0, 0);
        for k in 0..per_task {
            let seed = Split::Val.seed(k);
            let mut vla = Vla::load(Path::new(&dir), seed, &candle_core::Device::Cpu)?;
            let mut env = Env::new(task, Split::Val, seed)?;
            vla.start(env.instruction())?;
            while !env.is_done() {
                let Decision::Act(oracle) = env.ask(&mut Oracle)? else {
                    break;
                };
                let frame = env.observe();
                let out = vla.decide(
                    &frame.rgb_bytes(),
                    &frame.height,
                    &Plan::Keep(oracle.subtask),
                )?;
                let [pick, place] = &out.keyposes[..] else {
                    break;
                };
                env.step(&Action::pick_place(out.subtask, pick.pose(), place.pose()))?;
            }
            told += usize::from(env.success());
            let mut policy = ModelPolicy::load(Path::new(&dir), seed, &candle_core::Device::Cpu)?;
            let r = loho_sim::run_episode(
                task,
                Split::Val,
                seed,
                &Default::default(),
                &mut policy,
                None,
            )?;
            own += usize::from(r.success);
        }
        println!(
            "{}: told the oracle's sub-tasks {told}/{per_task}, its own words {own}/{per_task}",
            task.code()
        );
    }
    Ok(())
}
