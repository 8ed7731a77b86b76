//! Actions the simulator must refuse: nothing moves, the step is spent, no panic.

use loho_core::pose::EePose;
use loho_core::safety::Rejection;
use loho_sim::env::{Action, EnvError, Rejected};
use loho_sim::world::ObjPose;
use loho_sim::{Env, Split, TaskId};

fn snapshot(env: &Env) -> (Vec<ObjPose>, EePose) {
    let w = env.world();
    ((0..w.objects.len()).map(|i| w.pose(i)).collect(), w.tip())
}

fn action(pick: EePose, place: EePose) -> Action {
    Action::pick_place(
        "pick up the red block and place it on the red bowl.",
        pick,
        place,
    )
}

fn outside(axis: &'static str, value: f64, [lo, hi]: [f64; 2]) -> Rejection {
    Rejection::Outside {
        axis,
        value,
        lo,
        hi,
    }
}

#[test]
fn nan_and_out_of_workspace_actions_are_rejected_without_motion() {
    let mut env = Env::new(TaskId::B, Split::Test, Split::Test.seed(0)).unwrap();
    let ok = EePose::new(0.5, 0.0, 0.04, 0.0);
    let cases = [
        (
            action(EePose::new(f64::NAN, 0.0, 0.04, 0.0), ok),
            Rejected::Unsafe("pick", Rejection::NotFinite),
        ),
        (
            action(ok, EePose::new(0.5, 0.0, 0.04, f64::INFINITY)),
            Rejected::Unsafe("place", Rejection::NotFinite),
        ),
        (
            action(EePose::new(0.9, 0.0, 0.04, 0.0), ok),
            Rejected::Unsafe("pick", outside("x", 0.9, [0.25, 0.75])),
        ),
        (
            action(ok, EePose::new(0.5, -0.7, 0.04, 0.0)),
            Rejected::Unsafe("place", outside("y", -0.7, [-0.5, 0.5])),
        ),
        (
            // Below the table: the keypose box of the robot file, not the tip's reach.
            action(ok, EePose::new(0.5, 0.0, -0.2, 0.0)),
            Rejected::Unsafe("place", outside("z", -0.2, [0.0, 0.3])),
        ),
    ];
    for (i, (a, why)) in cases.into_iter().enumerate() {
        let before = snapshot(&env);
        let t = env.world().time();
        let r = env.step(&a).unwrap();
        assert_eq!(r.outcome, Err(why));
        assert_eq!(r.reward, 0.0);
        assert_eq!(snapshot(&env), before, "case {i}: something moved");
        assert_eq!(env.world().time(), t, "case {i}: time passed");
        assert_eq!(
            env.steps_taken(),
            i + 1,
            "a refused action still spends its step"
        );
    }
}

#[test]
fn stepping_a_finished_episode_is_an_error() {
    let mut env = Env::new(TaskId::A, Split::Test, Split::Test.seed(0)).unwrap();
    let a = action(
        EePose::new(0.3, -0.4, 0.0, 0.0),
        EePose::new(0.3, -0.4, 0.0, 0.0),
    );
    while !env.is_done() {
        env.step(&a).unwrap();
    }
    assert_eq!(env.steps_taken(), env.max_steps());
    assert!(matches!(env.step(&a), Err(EnvError::Over)));
}

#[test]
fn picking_empty_table_lifts_nothing() {
    let mut env = Env::new(TaskId::B, Split::Test, Split::Test.seed(0)).unwrap();
    let hm = env.observe();
    // A bare spot: the table colour at height 0 under a few cells around it.
    let (u, v) = (0..320)
        .flat_map(|u| (0..160).map(move |v| (u, v)))
        .find(|&(u, v)| {
            u > 10
                && v > 10
                && u < 310
                && v < 150
                && (u - 10..u + 10).all(|uu| (v - 10..v + 10).all(|vv| hm.at(uu, vv).1 == 0.0))
        })
        .unwrap();
    let (x, y) = loho_sim::camera::grid().pixel_to_world(u, v);
    let before = snapshot(&env).0;
    let r = env
        .step(&action(
            EePose::new(x, y, 0.0, 0.0),
            EePose::new(0.5, 0.0, 0.1, 0.0),
        ))
        .unwrap();
    assert_eq!(r.outcome, Ok(loho_sim::world::Outcome::GraspFailed));
    for (a, b) in snapshot(&env).0.iter().zip(&before) {
        let d = (0..3)
            .map(|k| (a.pos[k] - b.pos[k]).abs())
            .fold(0.0, f64::max);
        assert!(d < 5e-4, "an object moved {d} m");
    }
    assert!(env.world().held().is_none() && !env.world().suction());
}
