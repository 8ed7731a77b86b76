//! `loho eval`: the benchmark table, episodes spread over worker threads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use loho_core::clock::ClockSource;
use loho_core::policy::{Policy, Unscored};
use loho_models::train::trained_tasks;
use loho_runtime::policy::remote::RemotePolicy;
use loho_sim::draw::Draw;
use loho_sim::rgbd::Rig;
use loho_sim::{run_episode, EpisodeResult, Split, TaskId};
use serde::Serialize;

use loho_runtime::{Bus, BusConfig};

use crate::args::{self, ArmKind, DeviceArg};
use crate::policy::PolicyKind;
use crate::wiring::ArmPath;

#[derive(Args, Debug)]
pub struct EvalCmd {
    #[arg(long, default_value = "oracle")]
    pub policy: String,
    #[arg(long, default_value = "all")]
    pub tasks: String,
    #[arg(long, default_value = "test")]
    pub split: String,
    #[arg(long, default_value_t = 50)]
    pub episodes: usize,
    /// First episode number within the split (each episode's benchmark seed is derived
    /// from its number).
    #[arg(long = "episode", visible_alias = "seed", default_value_t = 0)]
    pub first_episode: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// `local` calls the policy and the simulator directly; `zenoh` runs every
    /// episode through the sim, controller and policy nodes (lockstep); `infer` asks
    /// a policy node for each decision through its `policy/infer` queryable.
    #[arg(long, default_value = "local")]
    pub transport: String,
    /// With `--transport infer`: the endpoint of a running `loho policy` to use
    /// instead of one started here (repeatable).
    #[arg(long)]
    pub connect: Vec<String>,
    /// `reward`: the policy is told the reward so far (LoHoVLA's closed loop in the
    /// simulator); `none`: it is not, as on a robot (the simulator still scores).
    #[arg(long, value_enum, default_value_t = Feedback::Reward)]
    pub feedback: Feedback,
    /// `ur-emulator`: every episode through the nodes in real time, the arm a UR
    /// controller emulator driven over RTDE by the UR driver.
    #[arg(long, value_enum, default_value_t = ArmKind::Sim)]
    pub arm: ArmKind,
    /// What the policy sees: `ideal` (the benchmark's top-down heightmap), `benchmark`
    /// (its front, left and right RGB-D cameras, realistic, fused), or a rig file.
    #[arg(long, default_value = "ideal")]
    pub camera: String,
    #[command(flatten)]
    pub draw: args::DrawArgs,
    #[command(flatten)]
    pub device: DeviceArg,
}

/// Whether the policy hears the simulator's reward.
#[derive(clap::ValueEnum, serde::Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Feedback {
    Reward,
    #[value(name = "none")]
    #[serde(rename = "none")]
    Unscored,
}

#[derive(Debug, Serialize)]
pub struct TaskRow {
    pub letter: String,
    pub name: String,
    pub episodes: usize,
    pub score: f64,
    pub success_rate: f64,
    pub mean_steps: f64,
    /// Steps, over all episodes, that picked an object an earlier step had placed for
    /// reward (`loho_sim::env::Repicks`).
    pub repicks: usize,
    /// The checkpoint's `train.json` lists the tasks it trained on, and not this one.
    pub held_out: bool,
}

/// How one episode went, as `--json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct EpisodeRow {
    pub task: String,
    pub seed: u64,
    pub instruction: String,
    pub total_reward: f64,
    pub success: bool,
    pub steps: usize,
    pub repicks: usize,
    pub subtasks: Vec<String>,
}

impl From<&EpisodeResult> for EpisodeRow {
    fn from(r: &EpisodeResult) -> Self {
        Self {
            task: r.task.code().to_string(),
            seed: r.seed,
            instruction: r.instruction.clone(),
            total_reward: r.total_reward,
            success: r.success,
            steps: r.steps,
            repicks: r.repicks,
            subtasks: r.subtasks.clone(),
        }
    }
}

/// What `--json` writes.
#[derive(Debug, Serialize)]
pub struct Report {
    pub policy: String,
    pub split: Split,
    pub seed: u64,
    pub episodes: usize,
    pub feedback: Feedback,
    /// `ur-emulator`: episodes went through the UR driver and a controller emulator.
    pub arm: ArmKind,
    /// What the policy saw: `ideal`, `benchmark` or a rig file.
    pub camera: String,
    /// Milliseconds per observation through the cameras (render and fuse), if any.
    pub ms_per_frame: Option<f64>,
    pub tasks: Vec<TaskRow>,
    pub mean_score: f64,
    pub mean_success_rate: f64,
    pub wall_s: f64,
    /// The episodes that did not succeed (also in `results`).
    pub failures: Vec<EpisodeRow>,
    /// Every episode, by task and seed: what a change that must not alter behaviour is
    /// compared on.
    pub results: Vec<EpisodeRow>,
}

pub struct EvalArgs {
    pub policy: PolicyKind,
    pub tasks: Vec<TaskId>,
    pub split: Split,
    pub episodes: usize,
    pub seed: u64,
    pub jobs: usize,
    pub transport: Transport,
    pub feedback: Feedback,
    pub arm: ArmKind,
    /// `None`: the ideal heightmap; else these cameras, fused.
    pub cameras: Option<Arc<Rig>>,
    /// What `--camera` said (for the report).
    pub camera: String,
    /// How episodes are drawn (`--palette`, `--instructions`).
    pub draw: Draw,
}

impl EvalArgs {
    /// One episode in this process: `policy` (told the reward or not) on the simulator,
    /// seen as `--camera` says.
    fn run(&self, task: TaskId, seed: u64, policy: Box<dyn Policy>) -> Result<EpisodeResult> {
        let mut policy = self.with_feedback(policy);
        let cams = self.cameras.clone();
        Ok(run_episode(
            task,
            self.split,
            seed,
            &self.draw,
            policy.as_mut(),
            cams,
        )?)
    }

    /// What acts in an episode: `policy`, told the reward or not.
    fn with_feedback(&self, policy: Box<dyn Policy>) -> Box<dyn Policy> {
        match self.feedback {
            Feedback::Reward => policy,
            Feedback::Unscored => Box::new(Unscored(policy)),
        }
    }
}

/// How episodes reach the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// The policy and the simulator called directly.
    Local,
    /// Through the sim, controller and policy nodes over zenoh (lockstep).
    Zenoh,
    /// Each decision a `policy/infer` query to a policy node: one started in this
    /// process, or the one reached through these endpoints.
    Infer { connect: Vec<String> },
}

impl Transport {
    pub fn parse(s: &str, connect: Vec<String>) -> Result<Self> {
        let t = match s {
            "local" => Self::Local,
            "zenoh" => Self::Zenoh,
            "infer" => return Ok(Self::Infer { connect }),
            other => anyhow::bail!("unknown --transport {other:?}: use local, zenoh or infer"),
        };
        anyhow::ensure!(
            connect.is_empty(),
            "--connect is for --transport infer (a policy node elsewhere)"
        );
        Ok(t)
    }
}

/// `loho eval`: the table on stdout, failed episodes on stderr, the report as JSON.
pub fn command(c: EvalCmd) -> Result<()> {
    let draw = c.draw.draw(0.0)?;
    let args = EvalArgs {
        transport: Transport::parse(&c.transport, c.connect)?,
        policy: PolicyKind::parse(&c.policy)?
            .on(&c.device)?
            .seeing(draw.palette.as_deref()),
        tasks: TaskId::parse_list(&c.tasks)?,
        split: args::split(&c.split)?,
        episodes: c.episodes,
        seed: c.first_episode,
        jobs: args::jobs(c.jobs),
        feedback: c.feedback,
        arm: c.arm,
        cameras: args::cameras(&c.camera)?,
        camera: c.camera.clone(),
        draw,
    };
    anyhow::ensure!(
        args.arm == ArmKind::Sim || !matches!(args.transport, Transport::Infer { .. }),
        "--arm ur-emulator runs every episode through the nodes: drop --transport infer"
    );
    let report = evaluate(&args)?;
    print!("{}", table(&report));
    for f in &report.failures {
        eprintln!(
            "failed: task {} seed {} reward {:.2} after {} steps; last sub-task: {}",
            f.task,
            f.seed,
            f.total_reward,
            f.steps,
            f.subtasks.last().map_or("", |s| s.as_str())
        );
    }
    crate::json::write(c.json.as_ref(), &report)
}

/// Runs every (task, episode) pair; episode k of a task uses the split's seed number
/// `seed + k`, so tasks share seeds and runs are reproducible.
pub fn evaluate(a: &EvalArgs) -> Result<Report> {
    let work: Vec<(TaskId, u64)> = a
        .tasks
        .iter()
        .flat_map(|&t| (0..a.episodes as u64).map(move |k| (t, a.split.seed(a.seed + k))))
        .collect();
    let bar = ProgressBar::new(work.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} episodes  {elapsed} (eta {eta})  {msg}")
            .expect("template"),
    );
    let server = match &a.transport {
        Transport::Infer { connect } => Some(InferServer::start(a, connect)?),
        _ => None,
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<EpisodeResult>> = Mutex::new(Vec::with_capacity(work.len()));
    let start = Instant::now();
    let errors: Mutex<Vec<anyhow::Error>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..a.jobs.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(task, seed)) = work.get(i) else {
                    break;
                };
                let run = match &server {
                    Some(server) => server.episode(a, task, seed),
                    None if a.transport == Transport::Zenoh || a.arm == ArmKind::UrEmulator => {
                        episode_through_nodes(a, task, seed)
                    }
                    None => a
                        .policy
                        .make(seed)
                        .and_then(|policy| a.run(task, seed, policy)),
                }
                .with_context(|| format!("task {} seed {seed}", task.code()));
                match run {
                    Ok(r) => {
                        if !r.success {
                            bar.set_message(format!("{} seed {} failed", task.code(), seed));
                        }
                        results.lock().unwrap().push(r);
                    }
                    Err(e) => errors.lock().unwrap().push(e),
                }
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    drop(server);
    if let Some(e) = errors.into_inner().unwrap().into_iter().next() {
        return Err(e);
    }
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| (r.task, r.seed));
    let mut rows = Vec::new();
    for &t in &a.tasks {
        let rs: Vec<&EpisodeResult> = results.iter().filter(|r| r.task == t).collect();
        let n = rs.len().max(1) as f64;
        rows.push(TaskRow {
            letter: t.code().to_string(),
            name: t.name().into(),
            episodes: rs.len(),
            score: 100.0 * rs.iter().map(|r| r.total_reward).sum::<f64>() / n,
            success_rate: 100.0 * rs.iter().filter(|r| r.success).count() as f64 / n,
            mean_steps: rs.iter().map(|r| r.steps as f64).sum::<f64>() / n,
            repicks: rs.iter().map(|r| r.repicks).sum(),
            held_out: false,
        });
    }
    if let Some(trained) = a.policy.checkpoint("").ok().and_then(trained_tasks) {
        for r in &mut rows {
            r.held_out = !trained.contains(&r.letter);
        }
    }
    let m = rows.len().max(1) as f64;
    Ok(Report {
        policy: a.policy.name(),
        split: a.split,
        seed: a.seed,
        episodes: a.episodes,
        feedback: a.feedback,
        arm: a.arm,
        camera: a.camera.clone(),
        ms_per_frame: a.cameras.as_ref().and_then(|r| r.ms_per_frame()),
        mean_score: rows.iter().map(|r| r.score).sum::<f64>() / m,
        mean_success_rate: rows.iter().map(|r| r.success_rate).sum::<f64>() / m,
        tasks: rows,
        wall_s: start.elapsed().as_secs_f64(),
        failures: results
            .iter()
            .filter(|r| !r.success)
            .map(EpisodeRow::from)
            .collect(),
        results: results.iter().map(EpisodeRow::from).collect(),
    })
}

/// One episode through the nodes, on a zenoh session of its own (no listener: several
/// run side by side without hearing each other): the simulator in lockstep with its own
/// arm, or in real time with a UR controller emulator and the UR driver.
fn episode_through_nodes(a: &EvalArgs, task: TaskId, seed: u64) -> Result<EpisodeResult> {
    let bus = loho_runtime::Bus::open(&Default::default())?;
    let (clock, arm) = match a.arm {
        ArmKind::Sim => (ClockSource::Sim, ArmPath::Direct),
        ArmKind::UrEmulator => (ClockSource::Wall, ArmPath::Driven),
    };
    let sim = loho_sim::node::SimConfig {
        draw: a.draw.clone(),
        task,
        split: a.split,
        seed,
        fps: 10.0,
        clock,
        runtime: Default::default(),
        exit_when_done: true,
        cameras: a.cameras.clone(),
    };
    let policy = a.with_feedback(a.policy.make(seed)?);
    crate::wiring::episode(&bus, &sim, &arm, policy, None, Duration::from_secs(900))
}

/// The policy node `policy/infer` queries go to, and the session they go through.
struct InferServer {
    bus: Bus,
    /// A node of this process's own, stopped when the server is dropped.
    node: Option<(Arc<AtomicBool>, std::thread::JoinHandle<Result<()>>)>,
}

impl InferServer {
    const TIMEOUT: Duration = Duration::from_secs(60);

    fn start(a: &EvalArgs, connect: &[String]) -> Result<Self> {
        if !connect.is_empty() {
            let cfg = BusConfig {
                connect: connect.to_vec(),
                ..Default::default()
            };
            let bus = Bus::open(&cfg).with_context(|| format!("connecting to {connect:?}"))?;
            anyhow::ensure!(
                bus.is_alive("policy", Duration::from_secs(5))?,
                "no policy node answers at {connect:?} (start one with `loho policy --listen …`)"
            );
            return Ok(Self { bus, node: None });
        }
        let bus = Bus::open(&Default::default())?;
        let mut policy = a.policy.node(a.seed)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (bus.clone(), stop.clone());
        let node = std::thread::Builder::new()
            .name("policy".into())
            .spawn(move || {
                Ok(loho_runtime::policy::node::run(
                    &b,
                    policy.as_mut(),
                    &Default::default(),
                    s,
                )?)
            })?;
        let server = Self {
            bus,
            node: Some((stop, node)),
        };
        // The node declares its liveliness token after its queryable: wait for it, so the
        // first query does not go out before anyone serves it.
        let t0 = std::time::Instant::now();
        while !server.bus.is_alive("policy", Duration::from_millis(200))? {
            anyhow::ensure!(
                !server.node.as_ref().is_some_and(|(_, n)| n.is_finished()),
                "the policy node stopped before it served (its error is logged)"
            );
            anyhow::ensure!(
                t0.elapsed() < Self::TIMEOUT,
                "the policy node did not start within {:?}",
                Self::TIMEOUT
            );
        }
        Ok(server)
    }

    fn episode(&self, a: &EvalArgs, task: TaskId, seed: u64) -> Result<EpisodeResult> {
        let policy = RemotePolicy::new(self.bus.clone(), seed, Self::TIMEOUT);
        a.run(task, seed, Box::new(policy))
    }
}

impl Drop for InferServer {
    fn drop(&mut self) {
        if let Some((stop, node)) = self.node.take() {
            stop.store(true, Ordering::Relaxed);
            if let Ok(Err(e)) = node.join() {
                tracing::error!("policy node: {e:#}");
            }
        }
    }
}

/// The table in the LoHoVLA layout: tasks as columns, score and success rate as rows.
pub fn table(r: &Report) -> String {
    let mut s = format!(
        "policy {}  split {}  {} episodes per task  seed {}{}\n",
        r.policy,
        r.split.name(),
        r.episodes,
        r.seed,
        match r.feedback {
            Feedback::Reward => "",
            Feedback::Unscored => "  feedback none",
        }
        .to_string()
            + match r.arm {
                ArmKind::Sim => "",
                ArmKind::UrEmulator => "  arm ur-emulator",
            }
            + &match (r.camera.as_str(), r.ms_per_frame) {
                ("ideal", _) => String::new(),
                (c, Some(ms)) => format!("  camera {c} ({ms:.1} ms per fused frame)"),
                (c, None) => format!("  camera {c}"),
            }
    );
    s += &format!("{:<12}", "");
    for t in &r.tasks {
        let mark = if t.held_out { "*" } else { "" };
        s += &format!("{:>7}", format!("{}{mark}", t.letter));
    }
    s += &format!("{:>8}\n", "Avg");
    s += &format!("{:<12}", "Score");
    for t in &r.tasks {
        s += &format!("{:>7.1}", t.score);
    }
    s += &format!("{:>8.1}\n", r.mean_score);
    s += &format!("{:<12}", "Success (%)");
    for t in &r.tasks {
        s += &format!("{:>7.1}", t.success_rate);
    }
    s += &format!("{:>8.1}\n", r.mean_success_rate);
    s += &format!("{:<12}", "Steps");
    for t in &r.tasks {
        s += &format!("{:>7.1}", t.mean_steps);
    }
    s += &format!("\n{:<12}", "Re-picks");
    for t in &r.tasks {
        s += &format!("{:>7}", t.repicks);
    }
    let held_out: Vec<&TaskRow> = r.tasks.iter().filter(|t| t.held_out).collect();
    if !held_out.is_empty() {
        let mean = held_out.iter().map(|t| t.success_rate).sum::<f64>() / held_out.len() as f64;
        s += &format!(
            "\n* held out: the checkpoint's train.json lists no episode of it; mean success {mean:.1} %"
        );
    }
    s += &format!("\nwall time {:.1} s\n", r.wall_s);
    s
}
