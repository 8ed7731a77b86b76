//! A policy served by a policy node elsewhere: each decision is one `policy/infer` query,
//! and the closed loop runs on this side (the server keeps nothing per caller), so many
//! simulators can share one policy server.

use std::time::Duration;

use loho_core::msg::ActionChunk;
use loho_core::policy::codec::{chunk_decision, infer_request};
use loho_core::policy::{ClosedLoop, Decision, Observation, Policy, PolicyError};

use crate::bus::Bus;
use crate::keys;

pub struct RemotePolicy {
    bus: Bus,
    closed_loop: ClosedLoop,
    seed: u64,
    timeout: Duration,
}

impl RemotePolicy {
    /// Action samples are seeded from `seed` and the step, so an episode is reproducible
    /// whichever server answers.
    pub fn new(bus: Bus, seed: u64, timeout: Duration) -> Self {
        Self {
            bus,
            closed_loop: ClosedLoop::default(),
            seed,
            timeout,
        }
    }
}

impl Policy for RemotePolicy {
    fn reset(&mut self) {
        self.closed_loop = ClosedLoop::default();
    }

    fn decide(&mut self, obs: &Observation) -> Result<Decision, PolicyError> {
        let plan = self.closed_loop.plan(obs.total_reward);
        let seed = self.seed.wrapping_mul(1_000_003) ^ obs.step as u64;
        let request = infer_request(obs, &plan, seed);
        let answer: ActionChunk = self
            .bus
            .query(keys::INFER, &request, self.timeout)
            .map_err(|e| PolicyError(e.to_string()))?;
        let d = chunk_decision(&answer)
            .map_err(|why| PolicyError(format!("{}: {why}", keys::INFER)))?;
        self.closed_loop.acted(&d);
        Ok(d)
    }
}
