//! The policy node: at each decision point, the latest synchronised colour + depth frame
//! and the instruction go to a [`Policy`] on this node's own thread, and its decision
//! goes out as `policy/subtask` and `policy/action`.
//!
//! Decision points (DESIGN §7): the first frame of an episode; after the simulator scored
//! the step of the last chunk (`episode`, which also carries the reward the closed loop
//! needs; the simulator repeats its latest event with its frames, so a policy that
//! restarts mid-episode knows where it is); half a second after the controller stopped the
//! last chunk (a latched e-stop or a faulted arm would stop the next one at once), or after
//! it finished it on a robot with no simulator to score it (`exec/status`). A
//! decision always uses a frame newer than the one the last decision saw, so nothing acts
//! twice on one picture. Nothing is decided while the e-stop is latched.
//!
//! The node also serves `policy/infer` (DESIGN §4): a query carries one observation and
//! the caller's closed-loop choice (keep the sub-task or write a new one) and is answered
//! with one chunk, on this same thread, between the node's own decisions. The server keeps
//! no state per caller, so simulators on many machines can share one policy.
//!
//! One event loop: the zenoh callbacks push events (and queries) into a channel or fill
//! latest-value slots (frames, instruction, e-stop), and the loop selects between the
//! channel and a tick that looks at the slots.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crossbeam_channel::select;

use crate::bus::{Bus, BusError, Qos, Request};
use crate::diagnostics::Diagnostics;
use crate::keys;
use crate::msg::{
    ActionChunk, BoolMsg, DiagnosticArray, EpisodeEvent, ExecStatus, Image, InferRequest, StringMsg,
};

use super::{chunk, Decision, Observation, Plan, Policy};

/// Sent to an in-process observer after every decision (the console of `loho run`).
#[derive(Debug, Clone)]
pub struct DecisionReport {
    pub chunk_id: u64,
    pub decision: Decision,
    pub latency: Duration,
}

pub struct PolicyConfig {
    /// How often the loop looks at its latest frames and `stop` when no event comes.
    pub poll: Duration,
    pub reports: Option<mpsc::Sender<DecisionReport>>,
    /// The task while no `instruction` message came (a robot with no simulator to say
    /// it); a message wins.
    pub instruction: Option<String>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(5),
            reports: None,
            instruction: None,
        }
    }
}

/// How long the node waits after the controller stopped its chunk (e-stop, arm fault)
/// before it decides again.
const STOPPED_BACKOFF: Duration = Duration::from_millis(500);

/// What reaches the loop from the bus.
enum Event {
    Episode(EpisodeEvent),
    Status(ExecStatus),
    Infer(Box<Request<InferRequest>>),
    Bad(&'static str, String),
}

/// A chunk sent and not yet answered by the simulator or the controller.
struct Outstanding {
    id: u64,
    step: u32,
}

/// Runs the node on the calling thread until `stop` is set or the episode is over.
pub fn run(
    bus: &Bus,
    policy: &mut dyn Policy,
    cfg: &PolicyConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), BusError> {
    let _peers = bus.log_peers("policy", &["sim", "controller"], stop.clone())?;
    let color = bus.latest::<Image>(keys::COLOR)?;
    let depth = bus.latest::<Image>(keys::DEPTH)?;
    let instruction = bus.latest::<StringMsg>(keys::INSTRUCTION)?;
    let estop = bus.latest::<BoolMsg>(keys::ESTOP)?;
    let (tx, events) = crossbeam_channel::unbounded();
    let _events = bus.forward(keys::EPISODE, &tx, Event::Episode, Event::Bad)?;
    let _status = bus.forward(keys::EXEC_STATUS, &tx, Event::Status, Event::Bad)?;
    // Queries wait in the same queue, so inference stays on this thread.
    let _infer = bus.serve::<InferRequest, _>(keys::INFER, move |q| {
        let _ = tx.send(Event::Infer(Box::new(q)));
    })?;
    tracing::debug!("policy: serving {}", bus.key(keys::INFER));
    // A chunk sent before the controller is linked is lost, and the policy would wait for
    // its answer forever (in lockstep the simulator waits too): decide only while it is up.
    let controller_up = Arc::new(AtomicBool::new(false));
    let up = controller_up.clone();
    let _controller = bus.watch_alive("controller", move |alive| {
        up.store(alive, Ordering::Relaxed)
    })?;
    // Last, so that a peer who sees the node alive finds everything it serves.
    let _alive = bus.alive("policy")?;
    let subtask_pub = bus.publisher::<StringMsg>(keys::SUBTASK, Qos::Command)?;
    let action_pub = bus.publisher::<ActionChunk>(keys::ACTION, Qos::Command)?;
    let diag = Diagnostics::new(bus, "policy")?;
    let report_bad = |what: &str, why: &str| diag.report(0.0, DiagnosticArray::WARN, what, why);
    let ticks = crossbeam_channel::tick(cfg.poll);

    let mut outstanding: Option<Outstanding> = None;
    // Chunk ids start from the clock so a restarted policy never reuses one.
    let mut next_id = crate::clock::wall_ns() / 1000;
    let mut last_event: Option<EpisodeEvent> = None;
    let mut last_seen = f64::NEG_INFINITY;
    let mut current_instruction: Option<String> = None;
    let mut finished = false;
    let mut reported_decode_errors = 0;
    let mut resume = Instant::now();
    let mut last_chunk = 0;
    while !stop.load(Ordering::Relaxed) {
        let event = select! {
            recv(events) -> e => match e {
                Ok(e) => Some(e),
                Err(_) => break,
            },
            recv(ticks) -> _ => None,
        };
        match event {
            Some(Event::Episode(e)) => {
                if outstanding.as_ref().is_some_and(|o| e.step > o.step) {
                    outstanding = None;
                }
                finished = e.done;
                last_event = Some(e);
            }
            Some(Event::Status(s)) => {
                let ours = outstanding.as_ref().is_some_and(|o| o.id == s.chunk_id);
                if ours && s.state == ExecStatus::FAILED {
                    tracing::warn!("policy: chunk {} failed: {}", s.chunk_id, s.reason);
                }
                // With a simulator scoring steps, a finished chunk is answered by its
                // `episode` event (which carries the reward); without one, by its status.
                let ends = match s.state {
                    ExecStatus::STOPPED | ExecStatus::COMPLETE => true,
                    ExecStatus::DONE | ExecStatus::FAILED => last_event.is_none(),
                    _ => false,
                };
                if ours && ends {
                    outstanding = None;
                }
                if s.state == ExecStatus::STOPPED && s.chunk_id == last_chunk {
                    // The e-stop is latched or the arm faulted: a new chunk would be stopped
                    // the same way at once, so wait a while before deciding again. (The
                    // last chunk, outstanding or not: a restarted policy's first one is
                    // let go by the simulator's repeated `episode` event.)
                    resume = Instant::now() + STOPPED_BACKOFF;
                }
            }
            Some(Event::Infer(q)) => {
                next_id += 1;
                if let Err(why) = answer(policy, *q, next_id)? {
                    report_bad("policy/infer query refused", &why)?;
                }
            }
            Some(Event::Bad(topic, why)) => report_bad(&format!("undecodable {topic}"), &why)?,
            None => {}
        }
        let errors = color.decode_errors()
            + depth.decode_errors()
            + instruction.decode_errors()
            + estop.decode_errors();
        if errors > reported_decode_errors {
            reported_decode_errors = errors;
            report_bad("undecodable input", &format!("{errors} payloads so far"))?;
        }
        let Some(text) = instruction
            .get()
            .map(|s| s.data)
            .or_else(|| cfg.instruction.clone())
        else {
            continue;
        };
        if current_instruction.as_deref() != Some(text.as_str()) {
            // A new task: forget the old one's state (also the first instruction).
            policy.reset();
            current_instruction = Some(text.clone());
            finished = false;
            outstanding = None;
            last_event = None;
        }
        if finished
            || outstanding.is_some()
            || Instant::now() < resume
            || !controller_up.load(Ordering::Relaxed)
            || estop.get().is_some_and(|b| b.data)
        {
            continue;
        }
        let (Some(c), Some(d)) = (color.get(), depth.get()) else {
            continue;
        };
        let stamp = c.header.stamp.as_secs_f64();
        let after_event = last_event
            .as_ref()
            .is_none_or(|e| stamp >= e.header.stamp.as_secs_f64());
        if c.header.stamp != d.header.stamp || stamp <= last_seen || !after_event {
            continue;
        }
        last_seen = stamp;
        let (rgb, heights) = match frame(&c, &d) {
            Ok(f) => f,
            Err(why) => {
                report_bad("bad camera frame", &why)?;
                continue;
            }
        };
        let obs = Observation {
            instruction: &text,
            rgb: &rgb,
            height: &heights,
            rows: c.height as usize,
            cols: c.width as usize,
            total_reward: last_event.as_ref().map(|e| e.total_reward),
            step: last_event.as_ref().map_or(0, |e| e.step as usize),
            scene: None,
        };
        let t0 = Instant::now();
        let decision = match policy.decide(&obs) {
            Ok(d) => d,
            Err(e) => {
                // A policy that cannot decide moves nothing: report and wait for a newer
                // frame.
                diag.report(stamp, DiagnosticArray::ERROR, "decision failed", &e.0)?;
                continue;
            }
        };
        let latency = t0.elapsed();
        next_id += 1;
        let subtask = decision.subtask().to_string();
        tracing::debug!(
            chunk = next_id,
            ms = latency.as_secs_f64() * 1e3,
            "policy: {subtask}"
        );
        subtask_pub.put(&StringMsg { data: subtask })?;
        action_pub.put(&chunk(&decision, stamp, next_id))?;
        last_chunk = next_id;
        outstanding = Some(Outstanding {
            id: next_id,
            step: last_event.as_ref().map_or(0, |e| e.step),
        });
        if let Some(r) = &cfg.reports {
            let _ = r.send(DecisionReport {
                chunk_id: next_id,
                decision,
                latency,
            });
        }
    }
    Ok(())
}

/// The RGB bytes and heights of a colour + depth pair, or why they are not a frame.
pub fn frame(c: &Image, d: &Image) -> Result<(Vec<u8>, Vec<f32>), String> {
    c.check(crate::msg::encoding::RGB8, 3)
        .map_err(|e| format!("colour: {e}"))?;
    let h = d.to_f32().map_err(|e| format!("depth: {e}"))?;
    if c.width != d.width || c.height != d.height {
        return Err("colour and depth sizes differ".into());
    }
    Ok((c.data.clone(), h))
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
            let (rgb, height) = frame(&r.color, &r.depth)?;
            let obs = Observation {
                instruction: &r.instruction,
                rgb: &rgb,
                height: &height,
                rows: r.color.height as usize,
                cols: r.color.width as usize,
                // The caller made its closed-loop choice (`keep`) already.
                total_reward: None,
                step: 0,
                scene: None,
            };
            let plan = match (r.keep_subtask.is_empty(), r.rewrite) {
                (false, _) => Plan::Keep(r.keep_subtask.clone()),
                (true, true) => Plan::Rewrite,
                (true, false) => Plan::Write,
            };
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
