//! `loho run`: the main job. The three nodes share one embedded zenoh session in this
//! process; the console prints the instruction, each sub-task as the policy writes it
//! with its decision latency, and each step's reward; every topic goes into an MCAP file
//! and the frame after each step into a GIF, both under `--out`.

use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use loho_runtime::clock::ClockSource;
use loho_runtime::config::RuntimeConfig;
use loho_runtime::keys;
use loho_runtime::msg::{EpisodeEvent, Image, StringMsg};
use loho_runtime::policy::Decision;
use loho_runtime::record::Recorder;
use loho_runtime::{Bus, BusConfig};
use loho_sim::node::SimConfig;
use loho_sim::{Split, TaskId};

use crate::cli::RunCmd;
use crate::nodes;
use crate::policy::PolicyKind;

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
struct Film {
    frames: Vec<Vec<u8>>,
    /// The stamp the next wanted frame must reach.
    want: Option<f64>,
    last_step: Option<u32>,
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
        runtime: nodes::runtime_config(c.config.as_deref())?,
        timeout: Duration::from_secs(c.timeout),
        bus: c.bus.config("run"),
    })
}

pub fn run(a: &RunArgs) -> Result<()> {
    let seed = a.split.seed(a.episode);
    let policy = a.policy.make(seed)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let name = format!("{}-{}-{}", a.task.letter(), a.split.name(), a.episode);
    let mcap_path = a.out.join(format!("{name}.mcap"));
    let gif_path = a.out.join(format!("{name}.gif"));

    let bus = Bus::open(&a.bus).context("opening the run's zenoh session")?;
    let recorder = Recorder::start(&bus, &mcap_path, &[])?;

    // The console: sub-tasks with their latency, rewards per step.
    let (rtx, rrx) = mpsc::channel();
    let console = std::thread::spawn(move || {
        for r in rrx {
            let r: loho_runtime::policy::node::DecisionReport = r;
            let ms = r.latency.as_secs_f64() * 1e3;
            match r.decision {
                Decision::Act(a) => println!("  sub-task: {}  ({ms:.0} ms)", a.subtask),
                Decision::Done(text) => println!("  the policy says: {text}  ({ms:.0} ms)"),
            }
        }
    });
    let film = Arc::new(Mutex::new(Film {
        want: Some(0.0),
        ..Default::default()
    }));
    let f = film.clone();
    let _frames = bus.subscribe::<Image, _>(keys::COLOR, move |img| {
        let Ok(img) = img else { return };
        let mut film = f.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(stamp) = film.want {
            if img.header.stamp.as_secs_f64() >= stamp && img.check("rgb8", 3).is_ok() {
                film.frames.push(img.data);
                film.want = None;
            }
        }
    })?;
    let f = film.clone();
    let _events = bus.subscribe::<EpisodeEvent, _>(keys::EPISODE, move |e| {
        let Ok(e) = e else { return };
        let mut film = f.lock().unwrap_or_else(|p| p.into_inner());
        if film.last_step.is_some_and(|s| s >= e.step) || e.step == 0 {
            return;
        }
        film.last_step = Some(e.step);
        film.want = Some(e.header.stamp.as_secs_f64());
        println!(
            "step {}/{}: reward {:+.2}  total {:.2}{}",
            e.step,
            e.max_steps,
            e.reward,
            e.total_reward,
            if e.done { "  (done)" } else { "" }
        );
    })?;
    let _instruction = {
        let said = Arc::new(Mutex::new(false));
        bus.subscribe::<StringMsg, _>(keys::INSTRUCTION, move |m| {
            let mut said = said.lock().unwrap_or_else(|p| p.into_inner());
            if let (Ok(m), false) = (m, *said) {
                println!("instruction: {}", m.data);
                *said = true;
            }
        })?
    };

    let sim = SimConfig {
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
        a.task.letter(),
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
    let result = nodes::episode(
        &bus,
        &sim,
        &nodes::ArmPath::Direct,
        policy,
        Some(rtx),
        a.timeout,
    );
    let summary = recorder.finish()?;
    let _ = console.join();
    let r = result?;
    let frames = std::mem::take(&mut film.lock().unwrap_or_else(|p| p.into_inner()).frames);
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
        a.task.letter(),
        a.split.name(),
        a.episode,
        if r.success { "success" } else { "failure" },
        100.0 * r.total_reward,
        r.steps
    );
    Ok(())
}
