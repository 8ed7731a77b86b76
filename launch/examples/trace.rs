//! Runs a checkpoint on a few episodes and prints every step: the sub-task, the pick and
//! place keyposes, what the pick lifted and where it came to rest, the nearest goal target,
//! and the reward. Where `probe` asks "is the first decision right?", this asks "why did
//! the episode fail?".
//!
//! ```sh
//! cargo run --release --example trace -- models/checkpoints/loho-tiny K 3
//! ```

use std::path::Path;

use loho_models::ModelPolicy;
use loho_sim::{Decision, Env, Split, TaskId};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "models/checkpoints/loho-tiny".into());
    let task = TaskId::parse(&args.next().unwrap_or_else(|| "K".into()))?;
    let episodes: u64 = args.next().map_or(Ok(3), |s| s.parse())?;
    for k in 0..episodes {
        let seed = Split::Val.seed(k);
        let mut policy = ModelPolicy::load(Path::new(&dir), seed, &candle_core::Device::Cpu)?;
        let mut env = Env::new(task, Split::Val, seed)?;
        println!("== {} seed {seed}: {}", task.code(), env.instruction());
        for (i, o) in env.world().objects.iter().enumerate() {
            let pose = env.world().pose(i);
            let p = pose.pos;
            println!(
                "  [{i}] {} {:?} ({:.3}, {:.3}, {:.3}) yaw {:.0}°",
                o.color.name,
                o.kind,
                p[0],
                p[1],
                p[2],
                pose.yaw().to_degrees()
            );
        }
        while !env.is_done() {
            let Decision::Act(a) = env.ask(&mut policy)? else {
                println!("  done");
                break;
            };
            let lifted = env.world().top_at(a.pick.x, a.pick.y).0;
            let goal = env.current_goal().cloned();
            let r = env.step(&a)?;
            print!(
                "  {}\n    pick ({:.3}, {:.3}, {:.3}, {:.0}°) place ({:.3}, {:.3}, {:.3}, {:.0}°) -> {:?}",
                a.subtask,
                a.pick.x,
                a.pick.y,
                a.pick.z,
                a.pick.yaw.to_degrees(),
                a.place.x,
                a.place.y,
                a.place.z,
                a.place.yaw.to_degrees(),
                r.outcome
            );
            if let (Some(i), Some(g)) = (lifted, goal) {
                let pose = env.world().pose(i);
                let p = pose.pos;
                let o = &env.world().objects[i];
                let near = g
                    .targets
                    .iter()
                    .map(|t| {
                        let d = [t.pos[0] - p[0], t.pos[1] - p[1], t.pos[2] - p[2]];
                        let yaw = (pose.yaw() - t.yaw).to_degrees().rem_euclid(90.0);
                        (d[0].hypot(d[1]) * 100.0, d[2] * 100.0, yaw.min(90.0 - yaw))
                    })
                    .min_by(|a, b| a.0.total_cmp(&b.0));
                print!(
                    "\n    lifted {} {:?} now at ({:.3}, {:.3}, {:.3}); nearest target {near:.1?} (xy cm, z cm, yaw ° mod 90)",
                    o.color.name, o.kind, p[0], p[1], p[2]
                );
            }
            println!("\n    reward {:+.2} total {:.2}", r.reward, r.total);
        }
    }
    Ok(())
}
