//! The physical world: towers stand, objects rest where geometry says, the camera draws
//! what is there, and the same seed gives the same episode bit for bit.

use loho_core::robot::Robot;
use loho_core::trajectory::{pick_place, PrimitiveParams};
use loho_sim::camera::{self, grid, render};
use loho_sim::colors::{self, TABLE};
use loho_sim::env::{Observation, PolicyError};
use loho_sim::goal::{GoalStep, Target};
use loho_sim::oracle::{plan, plans};
use loho_sim::world::{Kind, ObjPose, Outcome, World, BIG, BOWL_FLOOR, SMALL};
use loho_sim::{run_episode, Decision, Env, Oracle, Policy, Split, TaskId, ALL_TASKS};

fn red() -> colors::Color {
    colors::by_name("red").unwrap()
}

#[test]
fn oracle_tower_of_four_stands_for_ten_seconds() {
    let mut w = World::new();
    let zone = w.add_zone(red(), 0.5, 0.1, 0.4);
    let spots = [
        (0.35, -0.3, 0.3),
        (0.62, -0.2, 1.2),
        (0.4, 0.35, -0.7),
        (0.65, 0.3, 2.5),
    ];
    let blocks: Vec<usize> = spots
        .iter()
        .map(|&(x, y, yaw)| {
            w.add_block(
                Kind::SmallBlock,
                red(),
                ObjPose::from_xyz_yaw(x, y, SMALL / 2.0, yaw),
            )
        })
        .collect();
    w.settle(1.0);
    let zp = w.pose(zone);
    let targets: Vec<Target> = (0..4)
        .map(|l| Target {
            pos: [zp.pos[0], zp.pos[1], 0.02 + 0.04 * l as f64],
            yaw: zp.yaw(),
        })
        .collect();
    let mut step = GoalStep::stack(blocks.clone(), targets.clone());
    step.symmetry = vec![std::f64::consts::FRAC_PI_2; 4];
    for _ in 0..4 {
        let a = plan(&w, &step).expect("a block left to stack");
        let sp = pick_place(
            w.tip(),
            a.pick.pose(),
            a.place.pose(),
            &PrimitiveParams::for_robot(Robot::ur5e()),
        )
        .unwrap();
        assert_eq!(w.execute(&sp, 5.0), Outcome::Placed);
    }
    assert!(plan(&w, &step).is_none(), "the oracle thinks it is done");
    assert_eq!(step.reward(&w), 1.0);
    let t0 = w.time();
    w.wait(10.0);
    assert!(w.time() - t0 >= 10.0 - 1e-9);
    let mut zs: Vec<f64> = blocks.iter().map(|&b| w.pose(b).pos[2]).collect();
    zs.sort_by(f64::total_cmp);
    eprintln!("tower levels after 10 s: {zs:?}");
    for (l, &b) in blocks.iter().enumerate() {
        let p = w.pose(b);
        let dxy = ((p.pos[0] - zp.pos[0]).powi(2) + (p.pos[1] - zp.pos[1]).powi(2)).sqrt();
        assert!(dxy < 0.005, "block {l} drifted {dxy} m off the tower axis");
        assert!(p.upright() > 0.999, "block {l} tilted");
        assert!(
            (zs[l] - (0.02 + 0.04 * l as f64)).abs() < 0.002,
            "level {l} at {}",
            zs[l]
        );
    }
    assert_eq!(step.reward(&w), 1.0, "the tower still counts after 10 s");
}

/// Drops `kind` just above `support_top` at (x, y) and returns where it comes to rest.
fn rest_height(w: &mut World, kind: Kind, x: f64, y: f64, support_top: f64) -> f64 {
    let b = w.add_block(
        kind,
        red(),
        ObjPose::from_xyz_yaw(x, y, support_top + kind.size() / 2.0 + 0.002, 0.3),
    );
    w.settle(5.0);
    w.wait(1.0);
    w.pose(b).pos[2]
}

#[test]
fn resting_heights_are_geometric_within_2mm() {
    let mut w = World::new();
    let cases = [
        (Kind::SmallBlock, 0.3, -0.4, 0.0, SMALL / 2.0),
        (Kind::BigBlock, 0.3, 0.4, 0.0, BIG / 2.0),
    ];
    for (kind, x, y, top, want) in cases {
        let z = rest_height(&mut w, kind, x, y, top);
        assert!(
            (z - want).abs() < 0.002,
            "{kind:?} on table at {z}, want {want}"
        );
    }
    // Stacks: small on small, small on big, big on big.
    for (base, top, x, y) in [
        (Kind::SmallBlock, Kind::SmallBlock, 0.6, -0.3),
        (Kind::BigBlock, Kind::SmallBlock, 0.6, 0.0),
        (Kind::BigBlock, Kind::BigBlock, 0.6, 0.3),
    ] {
        rest_height(&mut w, base, x, y, 0.0);
        let z = rest_height(&mut w, top, x, y, base.size());
        let want = base.size() + top.size() / 2.0;
        assert!(
            (z - want).abs() < 0.002,
            "{top:?} on {base:?} at {z}, want {want}"
        );
    }
    w.add_bowl(red(), 0.45, 0.0, 0.0, true);
    let z = rest_height(&mut w, Kind::SmallBlock, 0.45, 0.0, BOWL_FLOOR);
    assert!(
        (z - (BOWL_FLOOR + SMALL / 2.0)).abs() < 0.002,
        "block in bowl at {z}"
    );
}

#[test]
fn a_block_renders_at_its_pixels_height_and_colour() {
    let mut w = World::new();
    w.add_block(
        Kind::SmallBlock,
        red(),
        ObjPose::from_xyz_yaw(0.5, 0.1, 0.02, 0.0),
    );
    w.settle(1.0);
    let hm = render(&w);
    let (u, v) = grid().world_to_pixel(0.5, 0.1).unwrap();
    assert_eq!((u, v), (192, 80));
    let (c, h) = hm.at(u, v);
    assert_eq!(c, red().rgb);
    assert!((h - 0.04).abs() < 0.001, "top at {h}");
    // The block covers x, y ∈ ±0.02 of its centre: 12 cells whose centres fall inside.
    let covered: Vec<usize> = (0..camera::WIDTH)
        .filter(|&v| hm.at(u, v).1 > 0.03)
        .collect();
    assert_eq!(covered, (74..=85).collect::<Vec<_>>());
    let rows: Vec<usize> = (0..camera::HEIGHT)
        .filter(|&u| hm.at(u, v).1 > 0.03)
        .collect();
    assert_eq!(rows, (186..=197).collect::<Vec<_>>());
    assert_eq!(hm.at(u, 73), (TABLE, 0.0));
    assert_eq!(hm.at(u, 86), (TABLE, 0.0));

    // Turned 45°: the corners reach 2.83 cm along the axes, the diagonal does not.
    let mut w = World::new();
    w.add_block(
        Kind::SmallBlock,
        red(),
        ObjPose::from_xyz_yaw(0.5, 0.1, 0.02, std::f64::consts::FRAC_PI_4),
    );
    w.settle(1.0);
    let hm = render(&w);
    let at = |x: f64, y: f64| {
        let (u, v) = grid().world_to_pixel(x, y).unwrap();
        hm.at(u, v)
    };
    assert_eq!(at(0.525, 0.1).0, red().rgb);
    assert_eq!(at(0.5, 0.075).0, red().rgb);
    assert_eq!(at(0.518, 0.118), (TABLE, 0.0));
}

#[test]
fn same_seed_same_episode_bit_for_bit() {
    for task in [TaskId::C, TaskId::H, TaskId::K] {
        let seed = Split::Test.seed(3);
        let finals: Vec<Vec<ObjPose>> = (0..2)
            .map(|_| {
                let mut env = loho_sim::Env::new(task, Split::Test, seed).unwrap();
                env.run(&mut Oracle, |_, _| {}).unwrap();
                (0..env.world().objects.len())
                    .map(|i| env.world().pose(i))
                    .collect()
            })
            .collect();
        assert_eq!(finals[0], finals[1], "task {task:?}");
        let other = loho_sim::Env::new(task, Split::Test, Split::Test.seed(4)).unwrap();
        let first = loho_sim::Env::new(task, Split::Test, seed).unwrap();
        assert_ne!(first.world().pose(0), other.world().pose(0), "seeds differ");
        assert_eq!(
            first.observe(),
            loho_sim::Env::new(task, Split::Test, seed)
                .unwrap()
                .observe()
        );
    }
}

#[test]
fn every_task_is_solved_by_the_oracle_on_a_few_seeds() {
    for task in ALL_TASKS {
        for k in 0..3 {
            let r = run_episode(
                task,
                Split::Val,
                Split::Val.seed(k),
                &Default::default(),
                &mut Oracle,
                None,
            )
            .unwrap();
            assert!(r.success, "{task:?} val seed {}: {r:?}", r.seed);
            assert!(r.steps <= 9);
            // It never undoes its own progress; E's and K's several blocks of one name
            // are several objects, not one picked again.
            assert_eq!(r.repicks, 0, "{task:?} val seed {}: {r:?}", r.seed);
        }
    }
}

/// The eight of 33 000 oracle episodes (1000 a task and split) it failed when a transfer
/// from a far corner passed at the lower end's hover and swept the carried block into
/// the tower it was to top (`loho_core::trajectory::pick_place`).
#[test]
fn the_oracle_tops_towers_from_the_far_corners() {
    let cases = [
        (TaskId::D, Split::Train, [320, 490, 862, 1444].as_slice()),
        (TaskId::D, Split::Test, &[10237]),
        (TaskId::G, Split::Train, &[12]),
        (TaskId::G, Split::Val, &[1037, 1291]),
    ];
    for (task, split, seeds) in cases {
        for &seed in seeds {
            let r = run_episode(task, split, seed, &Default::default(), &mut Oracle, None).unwrap();
            assert!(r.success, "{task:?} {split:?} seed {seed}: {r:?}");
        }
    }
}

/// The oracle taking the last of its offered moves instead of the first.
struct LastChoice;

impl Policy for LastChoice {
    fn decide(&mut self, obs: &Observation) -> Result<Decision, PolicyError> {
        let env = obs.scene.and_then(|s| s.downcast_ref::<Env>()).unwrap();
        Ok(
            match env.current_goal().and_then(|g| plans(env.world(), g).pop()) {
                Some(a) => Decision::Act(a),
                None => Decision::Done(env.episode.completed.clone()),
            },
        )
    }
}

#[test]
fn every_move_the_oracle_offers_makes_progress() {
    // What `gen-data` teaches as equally right must solve the task as well as the
    // oracle's own choice: taking the last offer each time still succeeds.
    let mut offered = 0;
    for task in ALL_TASKS {
        for k in 0..3 {
            let env = Env::new(task, Split::Val, Split::Val.seed(k)).unwrap();
            offered += env
                .current_goal()
                .map_or(0, |g| plans(env.world(), g).len());
            let r = run_episode(
                task,
                Split::Val,
                Split::Val.seed(k),
                &Default::default(),
                &mut LastChoice,
                None,
            )
            .unwrap();
            assert!(r.success, "{task:?} val seed {}: {r:?}", r.seed);
        }
    }
    assert!(
        offered > 2 * ALL_TASKS.len() * 3,
        "only {offered} first moves offered"
    );
}

/// H's base taken by another block of the start colour than the oracle's (as a policy
/// may, in a DAgger round): the oracle goes on with the other colour on it and finishes,
/// never offering the level above an empty one (it did, and the episode never ended).
#[test]
fn the_oracle_builds_on_whichever_block_took_a_towers_base() {
    let mut env = Env::new(TaskId::H, Split::Val, Split::Val.seed(0)).unwrap();
    let step = env.current_goal().unwrap().clone();
    let Decision::Act(first) = env.ask(&mut Oracle).unwrap() else {
        panic!("the oracle has nothing to do");
    };
    let picked = first.pick.pose();
    let other = (0..step.objects.len())
        .filter(|&i| step.matches[i][0])
        .map(|i| step.objects[i])
        .find(|&o| {
            let p = env.world().pose(o).pos;
            (p[0] - picked.x).hypot(p[1] - picked.y) > 0.01
        })
        .expect("a second block of the start colour");
    let p = env.world().pose(other);
    let top = p.pos[2] + env.world().objects[other].kind.size() / 2.0;
    let pick = loho_core::pose::EePose::new(p.pos[0], p.pos[1], top, p.yaw());
    let moved = loho_sim::Action::pick_place(first.subtask.clone(), pick, first.place.pose());
    assert!(
        env.step(&moved).unwrap().reward > 0.0,
        "the other block took the base"
    );
    let r = env.run(&mut Oracle, |_, _| {}).unwrap();
    assert!(r.success, "{r:?}");
}
