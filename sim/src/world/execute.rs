//! Setpoints executed: one servo step at a time (a driver), or a whole primitive.

use super::*;

impl World {
    /// One physics step with the tool commanded to `target`, as a driver streaming
    /// setpoints moves it: a downward move stops at first contact, suction switching on
    /// attaches what the tip touches (within 2.5 mm), switching off drops what it holds.
    pub fn servo(&mut self, target: EePose, suction: bool) {
        let mut target = target;
        if target.z < self.tip.z {
            if let Some((free, _)) = self.contact_below((self.tip.z - target.z) as f32) {
                target.z = self.tip.z - free as f64;
            }
        }
        if suction && !self.suction {
            self.suction = true;
            if let Some((_, Some(o))) = self.contact_below(0.002) {
                self.attach(o);
            }
        } else if !suction && self.suction {
            self.release();
        }
        self.step_to(target);
    }

    /// Runs one pick-and-place primitive, one setpoint per physics step, then lets the
    /// scene settle (at most `settle_s` simulated seconds).
    pub fn execute(&mut self, setpoints: &[Setpoint], settle_s: f64) -> Outcome {
        let mut outcome = Outcome::GraspFailed;
        let mut i = 0;
        while i < setpoints.len() {
            let sp = setpoints[i];
            let mut target = sp.pose;
            if sp.phase.is_descent() && target.z < self.tip.z {
                let dz = (self.tip.z - target.z) as f32;
                if let Some((free, what)) = self.contact_below(dz) {
                    target.z = self.tip.z - free as f64;
                    self.step_to(target);
                    let next = resume_index(setpoints, i, target.z);
                    if sp.phase == Phase::DescendPick {
                        self.suction = true;
                        if !what.is_some_and(|o| self.attach(o)) {
                            return self.finish_failed(setpoints, next, settle_s);
                        }
                    } else {
                        self.release();
                        outcome = Outcome::Placed;
                    }
                    i = next;
                    continue;
                }
            }
            // A descent that ends without contact: suction switches where the phase ends.
            if sp.phase == Phase::Lift && self.held.is_none() {
                self.suction = true;
                return self.finish_failed(setpoints, i, settle_s);
            }
            if sp.phase == Phase::Retreat && self.held.is_some() {
                self.release();
                outcome = Outcome::Placed;
            }
            self.step_to(target);
            i += 1;
        }
        self.release();
        self.settle(settle_s);
        outcome
    }

    /// After a failed grasp: lift back up (the rest of the lift phase), release, settle.
    pub(super) fn finish_failed(
        &mut self,
        setpoints: &[Setpoint],
        from: usize,
        settle_s: f64,
    ) -> Outcome {
        for sp in setpoints[from..]
            .iter()
            .take_while(|s| s.phase == Phase::Lift)
        {
            self.step_to(sp.pose);
        }
        self.release();
        self.settle(settle_s);
        Outcome::GraspFailed
    }
}
