//! Simulator speed on one core: physics steps per second and real-time factor on a
//! 10-block scene while the oracle stacks blocks, heightmap and perspective render time
//! per frame, and the benchmark's three RGB-D cameras: render, fuse, and both against the
//! ideal heightmap. Run with `cargo bench -p loho-sim`.

use std::time::Instant;

use loho_core::robot::Robot;
use loho_core::trajectory::{pick_place, PrimitiveParams};
use loho_sim::camera::{perspective, render};
use loho_sim::colors::ALL;
use loho_sim::goal::{GoalStep, Target};
use loho_sim::oracle::plan;
use loho_sim::rgbd::{Lighting, Rig};
use loho_sim::world::{Kind, ObjPose, World, DT};

/// Ten small blocks in two rows, and the goal of stacking the first five on the sixth's
/// spot: real contacts, falls and settling, not a scene at rest.
fn ten_blocks() -> (World, GoalStep) {
    let mut w = World::new();
    let blocks: Vec<usize> = (0..10)
        .map(|i| {
            let x = 0.32 + 0.09 * (i % 5) as f64;
            let y = if i < 5 { -0.3 } else { 0.3 };
            w.add_block(
                Kind::SmallBlock,
                ALL[i],
                ObjPose::from_xyz_yaw(x, y, 0.02, 0.3 * i as f64),
            )
        })
        .collect();
    let levels = (1..5)
        .map(|l| Target {
            pos: [0.5, 0.0, 0.02 + 0.04 * l as f64],
            yaw: 0.0,
        })
        .collect();
    let step = GoalStep::stack(blocks[..4].to_vec(), levels);
    w.add_block(
        Kind::SmallBlock,
        ALL[10],
        ObjPose::from_xyz_yaw(0.5, 0.0, 0.02, 0.0),
    );
    (w, step)
}

fn main() {
    // Physics while working: the oracle stacks four blocks, then the tower stands 10 s.
    let runs = 5;
    let (mut steps, mut wall) = (0.0, 0.0);
    for _ in 0..runs {
        let (mut w, step) = ten_blocks();
        let t = Instant::now();
        while let Some(a) = plan(&w, &step) {
            let sp = pick_place(
                w.tip(),
                a.pick.pose(),
                a.place.pose(),
                &PrimitiveParams::for_robot(Robot::ur5e()),
            )
            .unwrap();
            w.execute(&sp, 5.0);
        }
        w.wait(10.0);
        wall += t.elapsed().as_secs_f64();
        steps += w.time() / DT;
    }
    let sim_s = steps * DT;
    println!(
        "physics, 11-block scene, oracle stacking then 10 s standing: {:.0} steps/s, {:.0}× real time ({:.1} simulated s in {:.3} s)",
        steps / wall,
        sim_s / wall,
        sim_s,
        wall
    );

    // Physics with everything moving: the same blocks dropped from 5 cm, no sleeping.
    let mut w = World::new();
    for (i, &c) in ALL.iter().take(10).enumerate() {
        let x = 0.32 + 0.09 * (i % 5) as f64;
        let y = if i < 5 { -0.2 } else { 0.2 };
        w.add_block(Kind::SmallBlock, c, ObjPose::from_xyz_yaw(x, y, 0.07, 0.5));
    }
    let t = Instant::now();
    w.wait(0.5);
    let wall = t.elapsed().as_secs_f64();
    println!(
        "physics, 10 falling blocks: {:.0} steps/s, {:.0}× real time",
        0.5 / DT / wall,
        0.5 / wall
    );

    let (w, _) = ten_blocks();
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(render(&w));
    }
    let hm = t.elapsed().as_secs_f64() / n as f64;
    println!(
        "heightmap 320×160 RGB-D: {:.1} µs per frame ({:.0} frames/s)",
        hm * 1e6,
        1.0 / hm
    );
    let t = Instant::now();
    let m = 5;
    for _ in 0..m {
        std::hint::black_box(perspective(&w, 427, 320));
    }
    let pv = t.elapsed().as_secs_f64() / m as f64;
    println!(
        "perspective 427×320 (ray-traced): {:.1} ms per frame, {:.0}× the heightmap",
        pv * 1e3,
        pv / hm
    );

    let rig = Rig::benchmark();
    let light = Lighting::draw(1, rig.len());
    let m = 20;
    let t = Instant::now();
    let shots: Vec<_> = (0..m).map(|k| rig.shoot(&w, &light, k)).collect();
    let shoot = t.elapsed().as_secs_f64() / m as f64;
    let t = Instant::now();
    for s in &shots {
        std::hint::black_box(rig.heightmap(s));
    }
    let fuse = t.elapsed().as_secs_f64() / m as f64;
    println!(
        "benchmark cameras, 3 × 640×480 RGB-D: render {:.1} ms, fuse {:.1} ms per frame; {:.0}× the ideal heightmap",
        shoot * 1e3,
        fuse * 1e3,
        (shoot + fuse) / hm
    );
}
