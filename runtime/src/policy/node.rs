//! The policy node: at each decision point, the latest synchronised colour + depth frame
//! and the instruction go to a [`Policy`] on this node's own thread, and its decision
//! goes out as `policy/subtask` and `policy/action`.
//!
//! Decision points (docs/runtime.md): the first frame of an episode; after the simulator scored
//! the step of the last chunk (`episode`, which also carries the reward the closed loop
//! needs; the simulator repeats its latest event with its frames, so a policy that
//! restarts mid-episode knows where it is); half a second after the controller stopped the
//! last chunk (a latched e-stop or a faulted arm would stop the next one at once), or after
//! it finished it on a robot with no simulator to score it (`exec/status`). A
//! decision always uses a frame newer than the one the last decision saw, so nothing acts
//! twice on one picture. Nothing is decided while the e-stop is latched.
//!
//! The node also serves `policy/infer`: a query carries one observation and
//! the caller's closed-loop choice (keep the sub-task or write a new one) and is answered
//! with one chunk, on this same thread, between the node's own decisions. The server keeps
//! no state per caller, so simulators on many machines can share one policy.
//!
//! The loop is the runtime's (`crate::node`, which also latches the e-stop and follows
//! the controller's liveliness): episode events, statuses and queries are events; frames
//! and the instruction are latest-value slots, looked at after each event and each tick.

use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use loho_core::config::RuntimeConfig;
use loho_core::msg::{
    ActionChunk, DiagnosticArray, EpisodeEvent, ExecStatus, Image, InferRequest, StringMsg,
};
use loho_core::policy::codec::{chunk, served};
use loho_core::policy::{Decision, Frame, Policy};

use crate::bus::{Bus, BusError, Latest, Publisher, Qos, Request};
use crate::diagnostics::Diagnostics;
use crate::keys;
use crate::node::{self as runner, Context, Node, NodeSpec};

/// Sent to an in-process observer after every decision (the console of `loho run`).
#[derive(Debug, Clone)]
pub struct DecisionReport {
    pub chunk_id: u64,
    pub decision: Decision,
    pub latency: Duration,
}

pub struct PolicyConfig {
    /// Its name and peers, following the e-stop; its period is how often it looks at its
    /// latest frames when no event comes.
    pub node: NodeSpec,
    pub reports: Option<mpsc::Sender<DecisionReport>>,
    /// The task while no `instruction` message came (a robot with no simulator to say
    /// it); a message wins.
    pub instruction: Option<String>,
}

impl PolicyConfig {
    /// The policy node with the peers of `runtime`.
    pub fn new(runtime: &RuntimeConfig) -> Self {
        let node = NodeSpec::new("policy", runtime, Duration::from_millis(5));
        Self {
            node: node.with_estop(),
            reports: None,
            instruction: None,
        }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self::new(&RuntimeConfig::default())
    }
}

/// How long the node waits after the controller stopped its chunk (e-stop, arm fault)
/// before it decides again.
const STOPPED_BACKOFF: Duration = Duration::from_millis(500);

/// What reaches the node from the bus.
enum Event {
    Episode(EpisodeEvent),
    Status(ExecStatus),
    Infer(Box<Request<InferRequest>>),
}

/// A chunk sent and not yet answered by the simulator or the controller.
struct Outstanding {
    id: u64,
    step: u32,
}

struct PolicyNode<'a> {
    policy: &'a mut dyn Policy,
    cfg: &'a PolicyConfig,
    color: Latest<Image>,
    depth: Latest<Image>,
    instruction: Latest<StringMsg>,
    subtask_pub: Publisher<StringMsg>,
    action_pub: Publisher<ActionChunk>,
    diag: Arc<Diagnostics>,
    outstanding: Option<Outstanding>,
    next_id: u64,
    last_event: Option<EpisodeEvent>,
    /// The stamp of the newest frame a decision saw.
    last_seen: f64,
    current_instruction: Option<String>,
    finished: bool,
    reported_decode_errors: u64,
    /// No decision before this (after a stopped chunk).
    resume: Instant,
    last_chunk: u64,
}

/// Runs the node on the calling thread until `stop` is set.
pub fn run(
    bus: &Bus,
    policy: &mut dyn Policy,
    cfg: &PolicyConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), BusError> {
    runner::run(bus, &cfg.node, stop, |inputs| {
        inputs.forward(keys::EPISODE, Event::Episode)?;
        inputs.forward(keys::EXEC_STATUS, Event::Status)?;
        // Queries wait in the same queue, so inference stays on this thread.
        inputs.serve(keys::INFER, |q| Event::Infer(Box::new(q)))?;
        let bus = inputs.bus();
        tracing::debug!("policy: serving {}", bus.key(keys::INFER));
        Ok(PolicyNode {
            policy,
            cfg,
            color: bus.latest::<Image>(keys::COLOR)?,
            depth: bus.latest::<Image>(keys::DEPTH)?,
            instruction: bus.latest::<StringMsg>(keys::INSTRUCTION)?,
            subtask_pub: bus.publisher(keys::SUBTASK, Qos::Command)?,
            action_pub: bus.publisher(keys::ACTION, Qos::Command)?,
            diag: inputs.diagnostics(),
            outstanding: None,
            // Chunk ids start from the clock so a restarted policy never reuses one.
            next_id: loho_core::clock::wall_ns() / 1000,
            last_event: None,
            last_seen: f64::NEG_INFINITY,
            current_instruction: None,
            finished: false,
            reported_decode_errors: 0,
            resume: Instant::now(),
            last_chunk: 0,
        })
    })?;
    Ok(())
}

impl Node for PolicyNode<'_> {
    type Event = Event;
    type Error = BusError;

    /// The policy has no clock of its own.
    fn now(&self) -> f64 {
        0.0
    }

    fn event(&mut self, cx: &mut Context<Event>, e: Event) -> Result<(), BusError> {
        match e {
            Event::Episode(e) => {
                if self.outstanding.as_ref().is_some_and(|o| e.step > o.step) {
                    self.outstanding = None;
                }
                self.finished = e.done;
                self.last_event = Some(e);
            }
            Event::Status(s) => self.status(&s),
            Event::Infer(q) => {
                self.next_id += 1;
                if let Err(why) = answer(self.policy, *q, self.next_id)? {
                    self.report_bad("policy/infer query refused", &why)?;
                }
            }
        }
        self.decide(cx)
    }

    fn tick(&mut self, cx: &mut Context<Event>) -> Result<(), BusError> {
        self.decide(cx)
    }
}

impl PolicyNode<'_> {
    fn report_bad(&self, what: &str, why: &str) -> Result<(), BusError> {
        self.diag.report(0.0, DiagnosticArray::WARN, what, why)
    }

    fn status(&mut self, s: &ExecStatus) {
        let ours = self
            .outstanding
            .as_ref()
            .is_some_and(|o| o.id == s.chunk_id);
        if ours && s.state == ExecStatus::FAILED {
            tracing::warn!("policy: chunk {} failed: {}", s.chunk_id, s.reason);
        }
        // With a simulator scoring steps, a finished chunk is answered by its `episode`
        // event (which carries the reward); without one, by its status.
        let ends = match s.state {
            ExecStatus::STOPPED | ExecStatus::COMPLETE => true,
            ExecStatus::DONE | ExecStatus::FAILED => self.last_event.is_none(),
            _ => false,
        };
        if ours && ends {
            self.outstanding = None;
        }
        if s.state == ExecStatus::STOPPED && s.chunk_id == self.last_chunk {
            // The e-stop is latched or the arm faulted: a new chunk would be stopped the
            // same way at once, so wait a while before deciding again. (The last chunk,
            // outstanding or not: a restarted policy's first one is let go by the
            // simulator's repeated `episode` event.)
            self.resume = Instant::now() + STOPPED_BACKOFF;
        }
    }

    /// A decision, if this is a decision point and a new frame is there.
    fn decide(&mut self, cx: &Context<Event>) -> Result<(), BusError> {
        let errors = self.color.decode_errors()
            + self.depth.decode_errors()
            + self.instruction.decode_errors();
        if errors > self.reported_decode_errors {
            self.reported_decode_errors = errors;
            self.report_bad("undecodable input", &format!("{errors} payloads so far"))?;
        }
        let Some(text) = self
            .instruction
            .get()
            .map(|s| s.data)
            .or_else(|| self.cfg.instruction.clone())
        else {
            return Ok(());
        };
        if self.current_instruction.as_deref() != Some(text.as_str()) {
            // A new task: forget the old one's state (also the first instruction).
            self.policy.reset();
            self.current_instruction = Some(text.clone());
            self.finished = false;
            self.outstanding = None;
            self.last_event = None;
        }
        // A chunk sent before the controller is linked is lost, and the policy would wait
        // for its answer forever (in lockstep the simulator waits too): decide only while
        // the watched nodes are up.
        if self.finished
            || self.outstanding.is_some()
            || Instant::now() < self.resume
            || !cx.all_up()
            || cx.estop()
        {
            return Ok(());
        }
        let (Some(c), Some(d)) = (self.color.get(), self.depth.get()) else {
            return Ok(());
        };
        let stamp = c.header.stamp.as_secs_f64();
        let after_event = self
            .last_event
            .as_ref()
            .is_none_or(|e| stamp >= e.header.stamp.as_secs_f64());
        if c.header.stamp != d.header.stamp || stamp <= self.last_seen || !after_event {
            return Ok(());
        }
        self.last_seen = stamp;
        let frame = match Frame::from_images(&c, &d) {
            Ok(f) => f,
            Err(why) => return self.report_bad("bad camera frame", &why),
        };
        let last_event = self.last_event.as_ref();
        let obs = frame.observation(
            &text,
            last_event.map(|e| e.total_reward),
            last_event.map_or(0, |e| e.step as usize),
        );
        let t0 = Instant::now();
        let decision = match self.policy.decide(&obs) {
            Ok(d) => d,
            // A policy that cannot decide moves nothing: report and wait for a newer frame.
            Err(e) => {
                return self
                    .diag
                    .report(stamp, DiagnosticArray::ERROR, "decision failed", &e.0)
            }
        };
        let latency = t0.elapsed();
        self.next_id += 1;
        let id = self.next_id;
        let subtask = decision.subtask().to_string();
        tracing::debug!(
            chunk = id,
            ms = latency.as_secs_f64() * 1e3,
            "policy: {subtask}"
        );
        self.subtask_pub.put(&StringMsg { data: subtask })?;
        self.action_pub.put(&chunk(&decision, stamp, id))?;
        self.last_chunk = id;
        self.outstanding = Some(Outstanding {
            id,
            step: self.last_event.as_ref().map_or(0, |e| e.step),
        });
        if let Some(r) = &self.cfg.reports {
            let _ = r.send(DecisionReport {
                chunk_id: id,
                decision,
                latency,
            });
        }
        Ok(())
    }
}

/// Answers one `policy/infer` query: the chunk, or an error reply saying why not (also
/// returned, for the node's diagnostics).
fn answer(
    policy: &mut dyn Policy,
    q: Request<InferRequest>,
    id: u64,
) -> Result<Result<(), String>, BusError> {
    let decided = q
        .body
        .as_ref()
        .map_err(|e| format!("undecodable query: {e}"))
        .and_then(|r| {
            let (frame, plan) = served(r)?;
            // The caller made its closed-loop choice (the plan) already: no reward.
            let obs = frame.observation(&r.instruction, None, 0);
            let d = policy.infer(&obs, &plan, r.seed).map_err(|e| e.0)?;
            Ok(chunk(&d, r.color.header.stamp.as_secs_f64(), id))
        });
    match decided {
        Ok(c) => {
            q.reply(&c)?;
            Ok(Ok(()))
        }
        Err(why) => {
            q.refuse(&why)?;
            Ok(Err(why))
        }
    }
}
