//! The pick-and-place primitive as timed end-effector setpoints.
//!
//! One pure function turns a pick and a place keypose into the motion Ravens performs
//! (approach above the pick, descend, lift, transfer, descend, release, retreat), each
//! segment a straight line with a trapezoidal speed profile under the speed and
//! acceleration limits. The simulator consumes these setpoints and the controller streams
//! the same ones to real arms.
//!
//! Descents deliberately aim `overshoot` below the keypose: whoever executes them (the sim,
//! a driver) stops the descent at first contact, switches suction, and then skips the
//! following lift or retreat setpoints that lie below where it stopped (see
//! [`Phase::is_descent`] and [`resume_index`]).

use serde::{Deserialize, Serialize};

use crate::pose::{wrap_angle, EePose};
use crate::robot::{Reach, Robot};

/// Which part of the primitive a setpoint belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Approach,
    DescendPick,
    Lift,
    Transfer,
    DescendPlace,
    Retreat,
}

impl Phase {
    /// Descents end at first contact rather than at their last setpoint.
    pub fn is_descent(self) -> bool {
        matches!(self, Phase::DescendPick | Phase::DescendPlace)
    }
}

/// One timed setpoint: where the tool should be at `t` seconds after the primitive starts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Setpoint {
    pub t: f64,
    pub pose: EePose,
    /// Suction on.
    pub suction: bool,
    pub phase: Phase,
}

/// Speed and acceleration limits of one kind of motion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// m/s
    pub speed: f64,
    /// m/s²
    pub accel: f64,
    /// rad/s
    pub yaw_speed: f64,
}

/// Shape of the primitive. Defaults follow Ravens where it matters (travel 0.32 m above
/// the keyposes, which clears the tallest tower a task builds with a block hanging from
/// the tip), with speeds a UR5e handles comfortably.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrimitiveParams {
    /// Height of the approach and retreat points above the higher of the two keyposes (m).
    pub hover: f64,
    /// How far below a keypose a descent aims, so that contact (not the setpoint) ends it.
    pub overshoot: f64,
    /// Free-space moves.
    pub travel: Limits,
    /// The descents.
    pub descend: Limits,
    /// Setpoint rate (Hz).
    pub rate_hz: f64,
    /// The arm's reach: the hover height is lowered where the arm cannot go that high.
    pub reach: Reach,
}

impl PrimitiveParams {
    /// Ravens' primitive for `robot`: its reach bounds the transfers.
    pub fn for_robot(robot: &Robot) -> Self {
        Self {
            hover: 0.32,
            overshoot: 0.03,
            travel: Limits {
                speed: 1.0,
                accel: 4.0,
                yaw_speed: 3.0,
            },
            descend: Limits {
                speed: 0.3,
                accel: 3.0,
                yaw_speed: 3.0,
            },
            rate_hz: 240.0,
            reach: robot.limits.reach,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrajectoryError {
    #[error("{0} keypose is not finite")]
    NotFinite(&'static str),
    #[error("limits must be positive and finite")]
    BadLimits,
}

/// Duration of a straight move of length `d` turning by `dyaw` under `lim`, for the
/// fixed trapezoid of [`profile`]: its peak speed is 4/3 · d/T and its acceleration
/// 16/3 · d/T², so T is the smallest time keeping both (and the yaw rate) within limits.
fn move_time(d: f64, dyaw: f64, lim: &Limits) -> f64 {
    let t_speed = 4.0 / 3.0 * d / lim.speed;
    let t_accel = (16.0 / 3.0 * d / lim.accel).sqrt();
    let t_yaw = 4.0 / 3.0 * dyaw.abs() / lim.yaw_speed;
    t_speed.max(t_accel).max(t_yaw)
}

/// Fraction of a rest-to-rest trapezoidal move completed at time `t` of `total`.
fn profile(t: f64, total: f64) -> f64 {
    if total <= 0.0 {
        return 1.0;
    }
    // Symmetric trapezoid spending a quarter of the time accelerating at each end.
    let s = (t / total).clamp(0.0, 1.0);
    let ta = 0.25;
    let vmax = 1.0 / (1.0 - ta);
    if s < ta {
        0.5 * vmax / ta * s * s
    } else if s > 1.0 - ta {
        let r = 1.0 - s;
        1.0 - 0.5 * vmax / ta * r * r
    } else {
        0.5 * vmax * ta + vmax * (s - ta)
    }
}

/// The setpoints of the pick-and-place primitive from `start`.
pub fn pick_place(
    start: EePose,
    pick: EePose,
    place: EePose,
    p: &PrimitiveParams,
) -> Result<Vec<Setpoint>, TrajectoryError> {
    for (name, k) in [("start", &start), ("pick", &pick), ("place", &place)] {
        if !k.is_finite() {
            return Err(TrajectoryError::NotFinite(name));
        }
    }
    for l in [&p.travel, &p.descend] {
        let ok = [l.speed, l.accel, l.yaw_speed]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0);
        if !ok {
            return Err(TrajectoryError::BadLimits);
        }
    }
    if !(p.rate_hz > 0.0 && p.rate_hz.is_finite()) {
        return Err(TrajectoryError::BadLimits);
    }
    // Ravens' hover above the higher keypose, lowered at each end to what the arm reaches
    // there (never below that end's keypose); the transfer climbs or sinks in a straight
    // line between the two, inside the reach (a ball: the line stays in it). One height
    // for both ends, the lower end's, once carried a block from a far corner into the
    // tower it was to top: its bottom passed at the tower's top (oracle, D, train seed 320).
    let top = pick.z.max(place.z);
    let hover_at = |k: &EePose| (top + p.hover).min(p.reach.max_z(k.x, k.y)).max(k.z);
    // Yaw of the place relative to the pick, the short way round.
    let place_yaw = pick.yaw + wrap_angle(place.yaw - pick.yaw);
    let above_pick = EePose {
        z: hover_at(&pick),
        ..pick
    };
    let pick_bottom = EePose {
        z: (pick.z - p.overshoot).max(-p.overshoot),
        ..pick
    };
    let above_place = EePose {
        z: hover_at(&place),
        yaw: place_yaw,
        ..place
    };
    let place_bottom = EePose {
        z: (place.z - p.overshoot).max(-p.overshoot),
        yaw: place_yaw,
        ..place
    };
    let start = EePose {
        yaw: pick.yaw + wrap_angle(start.yaw - pick.yaw),
        ..start
    };
    let segs = [
        (Phase::Approach, start, above_pick, &p.travel, false),
        (
            Phase::DescendPick,
            above_pick,
            pick_bottom,
            &p.descend,
            false,
        ),
        (Phase::Lift, pick_bottom, above_pick, &p.travel, true),
        (Phase::Transfer, above_pick, above_place, &p.travel, true),
        (
            Phase::DescendPlace,
            above_place,
            place_bottom,
            &p.descend,
            true,
        ),
        (Phase::Retreat, place_bottom, above_place, &p.travel, false),
    ];
    let dt = 1.0 / p.rate_hz;
    let mut out = Vec::new();
    let mut t0 = 0.0;
    for (phase, a, b, lim, suction) in segs {
        let total = move_time(a.dist(&b), b.yaw - a.yaw, lim);
        // Stretch to a whole number of periods so every step is a full period.
        let n = (total / dt).ceil().max(1.0) as usize;
        let total = n as f64 * dt;
        for i in 1..=n {
            let t = i as f64 * dt;
            out.push(Setpoint {
                t: t0 + t,
                pose: a.lerp(&b, profile(t, total)),
                suction,
                phase,
            });
        }
        t0 += n as f64 * dt;
    }
    Ok(out)
}

/// Where to continue after a descent stopped at height `z` at setpoint `i`: the first
/// setpoint after the descent whose phase is not the descent and whose height is at or
/// above `z`, so the arm rises from where it actually is instead of jumping down.
pub fn resume_index(setpoints: &[Setpoint], i: usize, z: f64) -> usize {
    let phase = setpoints[i].phase;
    let mut j = i;
    while j < setpoints.len() && setpoints[j].phase == phase {
        j += 1;
    }
    let next = j;
    while j < setpoints.len() && setpoints[j].phase == setpoints[next].phase {
        if setpoints[j].pose.z >= z {
            return j;
        }
        j += 1;
    }
    j.min(setpoints.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_stay_within_the_arm_s_reach() {
        let p = PrimitiveParams::for_robot(Robot::ur5e());
        let top = |pick: EePose, place: EePose| {
            pick_place(EePose::new(0.5, 0.0, 0.2, 0.0), pick, place, &p)
                .unwrap()
                .iter()
                .map(|s| s.pose.z)
                .fold(f64::MIN, f64::max)
        };
        // Near the base: Ravens' hover, 0.32 m above the higher keypose.
        let near = top(
            EePose::new(0.4, -0.1, 0.02, 0.0),
            EePose::new(0.5, 0.1, 0.06, 0.0),
        );
        assert!((near - 0.38).abs() < 1e-9, "{near}");
        // From the far corner (0.9 m out) the transfer starts as high as the arm reaches
        // there and climbs to Ravens' hover above the place, inside the reach throughout.
        let (pick, place) = (
            EePose::new(0.75, 0.5, 0.02, 0.0),
            EePose::new(0.5, 0.0, 0.02, 0.0),
        );
        let setpoints = pick_place(EePose::new(0.5, 0.0, 0.2, 0.0), pick, place, &p).unwrap();
        let lifted = setpoints
            .iter()
            .find(|s| s.phase == Phase::Transfer)
            .unwrap();
        assert!(
            (lifted.pose.z - p.reach.max_z(0.75, 0.5)).abs() < 0.01,
            "{lifted:?}"
        );
        assert!((top(pick, place) - 0.34).abs() < 1e-9);
        for s in &setpoints {
            assert!(
                s.pose.z <= p.reach.max_z(s.pose.x, s.pose.y) + 1e-9,
                "{s:?}"
            );
        }
        // Topping a tower from the far side: the carried block's bottom (4 cm under the
        // tip) stays above the tower's top wherever it is over the tower's footprint.
        let (pick, place) = (
            EePose::new(0.70, -0.43, 0.04, 0.0),
            EePose::new(0.707, -0.079, 0.26, 0.0),
        );
        for s in pick_place(EePose::new(0.5, 0.0, 0.3, 0.0), pick, place, &p).unwrap() {
            let over = (s.pose.x - place.x).hypot(s.pose.y - place.y) < 0.06;
            if s.phase == Phase::Transfer && over {
                assert!(s.pose.z - 0.04 > 0.22 + 0.01, "{s:?}");
            }
        }
        // A keypose beyond the reach is not lowered into the table.
        let out = top(EePose::new(0.95, 0.5, 0.02, 0.0), place);
        assert!(out >= 0.02, "{out}");
    }

    fn sample() -> Vec<Setpoint> {
        pick_place(
            EePose::new(0.3, 0.0, 0.4, 0.0),
            EePose::new(0.5, -0.2, 0.04, 0.3),
            EePose::new(0.6, 0.2, 0.06, -0.5),
            &PrimitiveParams::for_robot(Robot::ur5e()),
        )
        .unwrap()
    }

    #[test]
    fn phases_come_in_order_and_suction_only_while_carrying() {
        let s = sample();
        let mut phases: Vec<Phase> = s.iter().map(|p| p.phase).collect();
        phases.dedup();
        use Phase::*;
        assert_eq!(
            phases,
            [Approach, DescendPick, Lift, Transfer, DescendPlace, Retreat]
        );
        for p in &s {
            assert_eq!(
                p.suction,
                matches!(p.phase, Lift | Transfer | DescendPlace),
                "{p:?}"
            );
        }
    }

    #[test]
    fn speed_and_acceleration_stay_within_limits() {
        let p = PrimitiveParams::for_robot(Robot::ur5e());
        let s = sample();
        let dt = 1.0 / p.rate_hz;
        // The first step leaves the start pose at rest.
        let mut prev_v = EePose::new(0.3, 0.0, 0.4, 0.0).dist(&s[0].pose) / dt;
        for w in s.windows(2) {
            let v = w[0].pose.dist(&w[1].pose) / dt;
            let lim = if w[1].phase.is_descent() {
                p.descend
            } else {
                p.travel
            };
            assert!(
                v <= lim.speed * 1.01,
                "{v} > {} in {:?}",
                lim.speed,
                w[1].phase
            );
            let a = (v - prev_v).abs() / dt;
            assert!(a <= lim.accel * 1.01, "{a} in {:?}", w[1].phase);
            prev_v = v;
        }
    }

    #[test]
    fn descents_aim_below_the_keypose_and_end_above_it() {
        let s = sample();
        let bottom = s.iter().rfind(|p| p.phase == Phase::DescendPick).unwrap();
        assert!((bottom.pose.z - 0.01).abs() < 1e-9);
        let last = s.last().unwrap();
        assert!((last.pose.z - 0.38).abs() < 1e-9);
        assert!((last.pose.x - 0.6).abs() < 1e-9);
    }

    #[test]
    fn resume_skips_lift_setpoints_below_the_contact() {
        let s = sample();
        let i = s
            .iter()
            .position(|p| p.phase == Phase::DescendPick && p.pose.z < 0.05)
            .unwrap();
        let j = resume_index(&s, i, 0.05);
        assert_eq!(s[j].phase, Phase::Lift);
        assert!(s[j].pose.z >= 0.05 && s[j - 1].pose.z < 0.05);
    }

    #[test]
    fn nan_keypose_is_rejected() {
        let e = pick_place(
            EePose::default(),
            EePose::new(f64::NAN, 0.0, 0.0, 0.0),
            EePose::default(),
            &PrimitiveParams::for_robot(Robot::ur5e()),
        );
        assert_eq!(e, Err(TrajectoryError::NotFinite("pick")));
    }
}
