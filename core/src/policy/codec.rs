//! A decision and an observation in their wire forms, both ways, in one place: a decision
//! as the `ActionChunk` that carries it (keyposes with their suction as `gripper`), an
//! [`Observation`] with its [`Plan`] as the `InferRequest` of a `policy/infer` query, a
//! plan as the request's keep/rewrite flags, and a decision as the rows of openpi's
//! action array.

use crate::msg::{self, ActionChunk, Header, Image, InferRequest, Time};
use crate::pose::{EePose, Keypose};

use super::{Action, Decision, Frame, Observation, Plan};

/// A keypose on the wire: its pose, and `gripper` 1 (suction on) or 0 (off).
pub fn keypose_msg(k: &Keypose) -> msg::Keypose {
    msg::Keypose {
        pose: k.pose().to_pose(),
        gripper: if k.suction { 1.0 } else { 0.0 },
        duration: 0.0,
    }
}

/// A wire keypose as loho's: suction on where `gripper` is above one half.
pub fn keypose(k: &msg::Keypose) -> Keypose {
    Keypose::new(EePose::from_pose(&k.pose), k.gripper > 0.5)
}

/// A decision as the chunk that carries it: pick (suction on), place (suction off), or
/// no keyposes for "done".
pub fn chunk(d: &Decision, obs_stamp: f64, id: u64) -> ActionChunk {
    ActionChunk {
        header: Header::new(obs_stamp, "world"),
        obs_stamp: Time::from_secs_f64(obs_stamp),
        chunk_id: id,
        subtask: d.subtask().to_string(),
        keyposes: d.keyposes().iter().map(keypose_msg).collect(),
    }
}

/// The decision a chunk carries: "done" without keyposes, a pick-and-place with two, or
/// why it is neither.
pub fn chunk_decision(c: &ActionChunk) -> Result<Decision, String> {
    if c.keyposes.is_empty() {
        return Ok(Decision::Done(c.subtask.clone()));
    }
    chunk_action(c).map(Decision::Act)
}

/// The pick and place of a chunk, or why it is not a pick-and-place.
pub fn chunk_action(c: &ActionChunk) -> Result<Action, String> {
    if c.keyposes.len() != 2 {
        return Err(format!(
            "a pick-and-place chunk has 2 keyposes, this one {}",
            c.keyposes.len()
        ));
    }
    let k: Vec<Keypose> = c.keyposes.iter().map(keypose).collect();
    Action::from_keyposes(c.subtask.clone(), &k)
}

/// A plan as `InferRequest`'s flags: the sub-task to keep (empty: write one) and whether
/// to write it again, sampled.
pub fn plan_flags(plan: &Plan) -> (String, bool) {
    match plan {
        Plan::Keep(text) => (text.clone(), false),
        Plan::Write => (String::new(), false),
        Plan::Rewrite => (String::new(), true),
    }
}

/// The plan the flags of [`plan_flags`] say; a kept sub-task wins over `rewrite`.
pub fn plan_of_flags(keep: &str, rewrite: bool) -> Plan {
    match (keep.is_empty(), rewrite) {
        (false, _) => Plan::Keep(keep.to_string()),
        (true, true) => Plan::Rewrite,
        (true, false) => Plan::Write,
    }
}

/// One `policy/infer` query: what the policy sees (stamped with the step), the caller's
/// plan, and the seed of its samples.
pub fn infer_request(obs: &Observation, plan: &Plan, seed: u64) -> InferRequest {
    let (w, h) = (obs.cols as u32, obs.rows as u32);
    let header = Header::new(obs.step as f64, "world");
    let (keep_subtask, rewrite) = plan_flags(plan);
    InferRequest {
        instruction: obs.instruction.to_string(),
        color: Image::rgb8(header.clone(), w, h, obs.rgb.to_vec()),
        depth: Image::f32c1(header, w, h, obs.height),
        keep_subtask,
        rewrite,
        seed,
    }
}

impl Frame {
    /// The pair as a frame, or why it is not one.
    pub fn from_images(c: &Image, d: &Image) -> Result<Self, String> {
        c.check(msg::encoding::RGB8, 3)
            .map_err(|e| format!("colour: {e}"))?;
        let height = d.to_f32().map_err(|e| format!("depth: {e}"))?;
        if c.width != d.width || c.height != d.height {
            return Err("colour and depth sizes differ".into());
        }
        Ok(Self {
            rgb: c.data.clone(),
            height,
            rows: c.height as usize,
            cols: c.width as usize,
        })
    }
}

/// The frame and plan of a `policy/infer` query, or why it is not one (the caller made its
/// closed-loop choice already, so the observation carries no reward).
pub fn served(r: &InferRequest) -> Result<(Frame, Plan), String> {
    let frame = Frame::from_images(&r.color, &r.depth)?;
    Ok((frame, plan_of_flags(&r.keep_subtask, r.rewrite)))
}

/// A decision as the rows of openpi's action array, each `x, y, z, yaw, suction`: the pick
/// (suction 1) then the place (0); no rows for "done".
pub fn action_rows(d: &Decision) -> Vec<[f32; 5]> {
    d.keyposes()
        .iter()
        .map(|k| [k.x, k.y, k.z, k.yaw, f64::from(u8::from(k.suction))].map(|v| v as f32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_carries_its_decision_both_ways() {
        let a = Decision::Act(Action::pick_place(
            "pick up the red block and place it on the red bowl.",
            EePose::new(0.4, -0.1, 0.02, 0.3),
            EePose::new(0.6, 0.2, 0.05, -0.2),
        ));
        let back = chunk_decision(&chunk(&a, 1.5, 7)).unwrap();
        let (Decision::Act(x), Decision::Act(y)) = (&a, &back) else {
            panic!("{back:?}");
        };
        assert_eq!(x.subtask, y.subtask);
        for (p, q) in x.keyposes().iter().zip(y.keyposes()) {
            assert!((p.x - q.x).abs() < 1e-12 && (p.yaw - q.yaw).abs() < 1e-9);
            assert_eq!(p.suction, q.suction);
        }
        let done = Decision::Done("done putting the blocks.".into());
        assert_eq!(chunk_decision(&chunk(&done, 0.0, 8)).unwrap(), done);
        let mut bad = chunk(&a, 0.0, 9);
        bad.keyposes.pop();
        assert!(chunk_decision(&bad).unwrap_err().contains("2 keyposes"));
        // Two keyposes that do not switch suction on and then off are no pick-and-place.
        let mut bad = chunk(&a, 0.0, 10);
        bad.keyposes[1].gripper = 1.0;
        assert!(chunk_decision(&bad).unwrap_err().contains("suction"));
    }

    #[test]
    fn a_plan_survives_its_flags_and_an_observation_its_query() {
        for plan in [
            Plan::Write,
            Plan::Rewrite,
            Plan::Keep("pick up the x.".into()),
        ] {
            let (keep, rewrite) = plan_flags(&plan);
            assert_eq!(plan_of_flags(&keep, rewrite), plan);
        }
        let frame = Frame {
            rgb: (0..24).map(|i| i as u8).collect(),
            height: (0..8).map(|i| i as f32 * 0.01).collect(),
            rows: 2,
            cols: 4,
        };
        let obs = frame.observation("stack the blocks.", Some(0.5), 3);
        let plan = Plan::Keep("pick up the red block.".into());
        let request = infer_request(&obs, &plan, 42);
        assert_eq!(
            (request.instruction.as_str(), request.seed),
            ("stack the blocks.", 42)
        );
        assert_eq!(served(&request).unwrap(), (frame, plan));
    }

    #[test]
    fn openpi_rows_are_pick_then_place_with_suction() {
        let a = Decision::Act(Action::pick_place(
            "s",
            EePose::new(0.4, -0.1, 0.02, 0.3),
            EePose::new(0.6, 0.2, 0.05, -0.2),
        ));
        let rows = action_rows(&a);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0][4], rows[1][4]), (1.0, 0.0));
        assert_eq!(rows[1][0], 0.6);
        assert!(action_rows(&Decision::Done("done.".into())).is_empty());
    }
}
