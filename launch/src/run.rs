//! `loho run`: the main job. The three nodes share one embedded zenoh session in this
//! process; the console prints the instruction, each sub-task as the policy writes it
//! with its decision latency, and each step's reward; every topic goes into an MCAP file
//! and the frame after each step into a GIF, both under `--out`.

use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use loho_core::clock::ClockSource;
use loho_core::config::RuntimeConfig;
use loho_core::msg::{EpisodeEvent, Image, StringMsg};
use loho_core::policy::Decision;
use loho_runtime::bus::Subscription;
use loho_runtime::keys;
use loho_runtime::record::Recorder;
use loho_runtime::{Bus, BusConfig};
use loho_sim::node::SimConfig;
use loho_sim::{Split, TaskId};

use crate::args::{BusArgs, DeviceArg, EpisodeArgs};
use crate::policy::PolicyKind;
use crate::wiring;

#[derive(Args, Debug)]
pub struct RunCmd {
    #[command(flatten)]
    pub episode: EpisodeArgs,
    /// A checkpoint: `default` (the shipped one) or a folder.
    #[arg(long, default_value = "default")]
    pub policy: String,
    /// Where the recording and the GIF go.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Run the simulator in lockstep (as fast as the loop goes) instead of real time.
    #[arg(long)]
    pub lockstep: bool,
    /// Runtime rates and limits [default: configs/runtime.toml, compiled in].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Give up after this many seconds of wall-clock time.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// Where the run's one session listens and connects, and how it names its topics
    /// (`--ros2 rmw-zenoh` to watch it from ROS 2 tools) [default: embedded, loopback].
    #[command(flatten)]
    pub bus: BusArgs,
    #[command(flatten)]
    pub device: DeviceArg,
}

pub struct RunArgs {
    pub task: TaskId,
    pub split: Split,
    /// Episode number within the split.
    pub episode: u64,
    pub policy: PolicyKind,
    pub out: PathBuf,
    pub clock: ClockSource,
    pub runtime: RuntimeConfig,
    pub timeout: Duration,
    pub bus: BusConfig,
}

/// Frames kept for the GIF: the first and the one after each scored step.
#[derive(Default)]
struct GifFrames {
    frames: Vec<Vec<u8>>,
    /// The stamp the next wanted frame must reach.
    want: Option<f64>,
    last_step: Option<u32>,
}

/// What `loho run` prints as the episode goes (the instruction, each step's reward) and
/// the frames it keeps for the GIF, from the bus.
struct Console {
    gif: Arc<Mutex<GifFrames>>,
    _subscriptions: [Subscription; 3],
}

impl Console {
    fn watch(bus: &Bus) -> Result<Self> {
        let gif_frames = Arc::new(Mutex::new(GifFrames {
            want: Some(0.0),
            ..Default::default()
        }));
        let f = gif_frames.clone();
        let frames = bus.subscribe::<Image, _>(keys::COLOR, move |img| {
            let Ok(img) = img else { return };
            let mut gif_frames = f.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(stamp) = gif_frames.want {
                if img.header.stamp.as_secs_f64() >= stamp && img.check("rgb8", 3).is_ok() {
                    gif_frames.frames.push(img.data);
                    gif_frames.want = None;
                }
            }
        })?;
        let f = gif_frames.clone();
        let events = bus.subscribe::<EpisodeEvent, _>(keys::EPISODE, move |e| {
            let Ok(e) = e else { return };
            let mut gif_frames = f.lock().unwrap_or_else(|p| p.into_inner());
            if gif_frames.last_step.is_some_and(|s| s >= e.step) || e.step == 0 {
                return;
            }
            gif_frames.last_step = Some(e.step);
            gif_frames.want = Some(e.header.stamp.as_secs_f64());
            println!(
                "step {}/{}: reward {:+.2}  total {:.2}{}",
                e.step,
                e.max_steps,
                e.reward,
                e.total_reward,
                if e.done { "  (done)" } else { "" }
            );
        })?;
        let instruction = {
            let said = Arc::new(Mutex::new(false));
            bus.subscribe::<StringMsg, _>(keys::INSTRUCTION, move |m| {
                let mut said = said.lock().unwrap_or_else(|p| p.into_inner());
                if let (Ok(m), false) = (m, *said) {
                    println!("instruction: {}", m.data);
                    *said = true;
                }
            })?
        };
        Ok(Self {
            gif: gif_frames,
            _subscriptions: [frames, events, instruction],
        })
    }

    /// The frames kept, in order.
    fn gif_frames(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.gif.lock().unwrap_or_else(|p| p.into_inner()).frames)
    }
}

/// `loho run`.
pub fn command(c: RunCmd) -> Result<()> {
    run(&RunArgs {
        task: c.episode.task()?,
        split: c.episode.split()?,
        episode: c.episode.episode,
        policy: PolicyKind::parse(&c.policy)?.on(&c.device)?,
        out: c.out,
        clock: if c.lockstep {
            ClockSource::Sim
        } else {
            ClockSource::Wall
        },
        runtime: wiring::runtime_config(c.config.as_deref())?,
        timeout: Duration::from_secs(c.timeout),
        bus: c.bus.config("run"),
    })
}

pub fn run(a: &RunArgs) -> Result<()> {
    let seed = a.split.seed(a.episode);
    let policy = a.policy.make(seed)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let name = format!("{}-{}-{}", a.task.code(), a.split.name(), a.episode);
    let mcap_path = a.out.join(format!("{name}.mcap"));
    let gif_path = a.out.join(format!("{name}.gif"));

    let bus = Bus::open(&a.bus).context("opening the run's zenoh session")?;
    let recorder = Recorder::start(&bus, &mcap_path, &[])?;

    // The console: sub-tasks with their latency, rewards per step.
    let (rtx, rrx) = mpsc::channel();
    let printer = std::thread::spawn(move || {
        for r in rrx {
            let r: loho_runtime::policy::node::DecisionReport = r;
            let ms = r.latency.as_secs_f64() * 1e3;
            match r.decision {
                Decision::Act(a) => println!("  sub-task: {}  ({ms:.0} ms)", a.subtask),
                Decision::Done(text) => println!("  the policy says: {text}  ({ms:.0} ms)"),
            }
        }
    });
    let console = Console::watch(&bus)?;

    let sim = SimConfig {
        draw: Default::default(),
        task: a.task,
        split: a.split,
        seed,
        fps: 10.0,
        clock: a.clock,
        runtime: a.runtime.clone(),
        exit_when_done: true,
        cameras: None,
    };
    println!(
        "task {} ({}), {} episode {}, {} time, policy {}",
        a.task.code(),
        a.task.name(),
        a.split.name(),
        a.episode,
        if a.clock == ClockSource::Sim {
            "lockstep"
        } else {
            "real"
        },
        a.policy.name()
    );
    let result = wiring::episode(
        &bus,
        &sim,
        &wiring::ArmPath::Direct,
        policy,
        Some(rtx),
        a.timeout,
    );
    let summary = recorder.finish()?;
    let _ = printer.join();
    let r = result?;
    let frames = console.gif_frames();
    crate::render::write_gif(&gif_path, &frames)?;
    let total: u64 = summary.messages.values().sum();
    println!(
        "recorded {total} messages on {} topics to {}; {} frames to {}",
        summary.messages.len(),
        mcap_path.display(),
        frames.len(),
        gif_path.display()
    );
    println!(
        "result: task {} {} episode {}: {} with score {:.1} in {} steps",
        a.task.code(),
        a.split.name(),
        a.episode,
        if r.success { "success" } else { "failure" },
        100.0 * r.total_reward,
        r.steps
    );
    Ok(())
}
