//! `loho gen-data`: oracle demonstrations on the train seeds, written as a dataset folder.
//!
//! Some executed actions are perturbed (the place, or the pick, shifted by a few
//! centimetres) while the label stays the oracle's plan, so the data also shows how to
//! recover from scenes a learned policy will cause: blocks off target, towers askew.
//! After a success the final frame is labelled with the task's "done" sentence.
//!
//! With `--dagger`, a learned policy acts instead (with its own sampling), and every state
//! it reaches is labelled with what the oracle would do there: the states its own
//! mistakes cause — a block in the wrong bowl, a placed block picked again — come with
//! the way back. Where the policy stops early, the oracle's move is executed, so the
//! episode goes on.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use loho_core::policy::Frame;
use loho_models::data::{Sample, Writer};
use loho_models::Keypose;
use loho_sim::camera::{self, gaussian, Heightmap};
use loho_sim::draw::Draw;
use loho_sim::oracle;
use loho_sim::rgbd::Rig;
use loho_sim::{colors, Split};
use loho_sim::{Action, Decision, Env, Oracle, Policy, TaskId};

use crate::args::{self, DeviceArg};
use crate::export::Export;
use crate::policy::PolicyKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Args, Debug)]
pub struct GenDataCmd {
    #[arg(long, default_value = "data/train")]
    pub out: PathBuf,
    #[arg(long, default_value = "all")]
    pub tasks: String,
    /// Episodes per task.
    #[arg(long, default_value_t = 600)]
    pub episodes: usize,
    /// First train episode number.
    #[arg(long = "episode", visible_alias = "seed", default_value_t = 0)]
    pub first_episode: u64,
    /// Probability that an executed action is shifted a few cm (the label stays the
    /// oracle's), so the data shows recoveries.
    #[arg(long, default_value_t = 0.2)]
    pub perturb: f64,
    /// Colours of tasks B–K: `all` 11 (the shipped model's data) or `split` (train's 7).
    #[arg(long, default_value = "all")]
    pub colors: String,
    /// Frames from the `ideal` heightmap or fused from the `benchmark` cameras (or a rig
    /// file's), as `loho eval --camera`.
    #[arg(long, default_value = "ideal")]
    pub camera: String,
    /// DAgger: this policy (`default` or a checkpoint folder) acts, with its sampling,
    /// and every state it reaches is labelled with the oracle's decision there.
    #[arg(long, requires = "policy")]
    pub dagger: bool,
    /// The policy `--dagger` rolls out.
    #[arg(long, requires = "dagger")]
    pub policy: Option<String>,
    /// Add to the dataset in `--out` instead of starting a new one (DAgger rounds).
    #[arg(long)]
    pub append: bool,
    /// `loho` (what `loho train` reads) or `lerobot` (a LeRobotDataset v3.0).
    #[arg(long, value_enum, default_value_t = DataFormat::Loho)]
    pub format: DataFormat,
    #[arg(long)]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub draw: args::DrawArgs,
    /// The share of episodes whose instruction the paraphrase generator rewords
    /// (synonyms, word order, politeness, typos; docs/simulator.md), drawn by the seed.
    #[arg(long, default_value_t = 0.0)]
    pub paraphrase: f64,
    #[command(flatten)]
    pub device: DeviceArg,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    Loho,
    Lerobot,
}

/// `loho gen-data`.
pub fn command(c: GenDataCmd) -> Result<()> {
    anyhow::ensure!(
        c.colors == "all" || c.colors == "split",
        "unknown --colors {:?}: use all or split",
        c.colors
    );
    anyhow::ensure!(
        !(c.append && c.format == DataFormat::Lerobot),
        "--append adds to loho's format only: a LeRobot dataset is written whole, into a new folder"
    );
    let draw = c.draw.draw(c.paraphrase)?;
    let policy = match (&c.policy, c.dagger) {
        (Some(p), true) => Some(
            PolicyKind::parse(p)?
                .on(&c.device)?
                .seeing(draw.palette.as_deref()),
        ),
        _ => None,
    };
    let args = GenArgs {
        policy,
        append: c.append,
        format: c.format,
        out: c.out.clone(),
        tasks: TaskId::parse_list(&c.tasks)?,
        episodes: c.episodes,
        first_episode: c.first_episode,
        perturb: c.perturb,
        all_colors: c.colors == "all",
        jobs: args::jobs(c.jobs),
        cameras: args::cameras(&c.camera)?,
        draw,
    };
    let n = generate(&args)?;
    println!(
        "wrote {n} decisions to {}{}",
        c.out.display(),
        if c.append { " (added)" } else { "" }
    );
    if let Some(ms) = args.cameras.as_ref().and_then(|r| r.ms_per_frame()) {
        println!(
            "{ms:.1} ms per frame through the {} cameras (render and fuse)",
            c.camera
        );
    }
    Ok(())
}

pub struct GenArgs {
    pub out: PathBuf,
    pub tasks: Vec<TaskId>,
    /// Episodes per task.
    pub episodes: usize,
    /// First train episode number.
    pub first_episode: u64,
    /// Probability that an executed action is perturbed.
    pub perturb: f64,
    /// Draw B–K colours from all 11 instead of the train split's 7.
    pub all_colors: bool,
    /// Frames fused from these cameras instead of the ideal heightmap.
    pub cameras: Option<Arc<Rig>>,
    /// DAgger: this policy acts (and `perturb` is not used); `None`: the oracle acts.
    pub policy: Option<PolicyKind>,
    /// Add to the dataset in `out` (loho's format only).
    pub append: bool,
    pub format: DataFormat,
    pub jobs: usize,
    /// How episodes are drawn (`--palette`, `--instructions`, `--paraphrase`).
    pub draw: Draw,
}

impl GenArgs {
    /// Oracle demonstrations of `episodes` per task into `out`, with gen-data's defaults.
    pub fn oracle(out: PathBuf, tasks: &[TaskId], episodes: usize, format: DataFormat) -> Self {
        Self {
            out,
            tasks: tasks.to_vec(),
            episodes,
            first_episode: 0,
            perturb: 0.2,
            all_colors: true,
            jobs: args::jobs(None),
            cameras: None,
            policy: None,
            append: false,
            format,
            draw: Draw::default(),
        }
    }
}

fn sample(env: &Env, step: usize, subtask: &str, keyposes: Vec<Keypose>) -> Sample {
    let mut alternatives: Vec<String> = env
        .current_goal()
        .map(|g| oracle::plans(env.world(), g))
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.subtask)
        .filter(|t| t != subtask)
        .collect();
    alternatives.sort();
    alternatives.dedup();
    Sample {
        task: env.episode.task.code().to_string(),
        seed: env.episode.seed,
        step,
        instruction: env.instruction().to_string(),
        subtask: subtask.to_string(),
        keyposes,
        frame: String::new(),
        alternatives,
        state: Some(Keypose::new(env.world().tip(), env.world().suction())),
    }
}

/// A few centimetres off: the place (more often) or the pick.
fn perturbed(a: &Action, rng: &mut ChaCha8Rng) -> Action {
    let mut a = a.clone();
    let (k, sigma) = if rng.gen_bool(0.7) {
        (&mut a.place, 0.03)
    } else {
        (&mut a.pick, 0.012)
    };
    let (x, y) = (camera::grid().x(), camera::grid().y());
    k.x = (k.x + sigma * gaussian(rng)).clamp(x[0], x[1]);
    k.y = (k.y + sigma * gaussian(rng)).clamp(y[0], y[1]);
    a
}

/// One labelled decision: its sample, the frame's RGB bytes and heights.
type Labelled = (Sample, Vec<u8>, Vec<f32>);

fn episode(task: TaskId, seed: u64, a: &GenArgs) -> Result<Vec<Labelled>> {
    let palette = if a.all_colors {
        colors::ALL.to_vec()
    } else {
        Split::Train.colors()
    };
    let ep = a.draw.with_colors(task, Split::Train, seed, &palette)?;
    let mut env = Env::from_episode(ep);
    if let Some(rig) = &a.cameras {
        env = env.with_cameras(rig.clone());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((task as u64) << 40));
    let mut actor = a.policy.as_ref().map(|p| p.make(seed)).transpose()?;
    let mut out = Vec::new();
    let push = |out: &mut Vec<Labelled>, s: Sample, rgb: &[u8], obs: &Heightmap| {
        out.push((s, rgb.to_vec(), obs.height.clone()));
    };
    while !env.is_done() {
        let obs = env.observe();
        let rgb = obs.rgb_bytes();
        let step = env.steps_taken();
        let label = Oracle.decide(&env.observation(&rgb, &obs))?;
        match &label {
            Decision::Done(text) => push(&mut out, sample(&env, step, text, vec![]), &rgb, &obs),
            Decision::Act(act) => {
                let kp = act.keyposes().to_vec();
                push(&mut out, sample(&env, step, &act.subtask, kp), &rgb, &obs);
            }
        }
        let own = match actor.as_mut() {
            Some(policy) => Some(policy.decide(&env.observation(&rgb, &obs))?),
            None => None,
        };
        let exec = match (own, label) {
            (Some(Decision::Act(mine)), _) => mine,
            (_, Decision::Done(_)) => return Ok(out),
            (Some(Decision::Done(_)), Decision::Act(act)) => act,
            (None, Decision::Act(act)) if rng.gen_bool(a.perturb) => perturbed(&act, &mut rng),
            (None, Decision::Act(act)) => act,
        };
        env.step(&exec)?;
    }
    if env.success() {
        let obs = env.observe();
        let text = env.episode.completed.clone();
        push(
            &mut out,
            sample(&env, env.steps_taken(), &text, vec![]),
            &obs.rgb_bytes(),
            &obs,
        );
    }
    Ok(out)
}

/// Generates the dataset (or adds to it); episodes are written in a fixed order whatever
/// the thread count. Returns the decisions written.
pub fn generate(a: &GenArgs) -> Result<usize> {
    let work: Vec<(TaskId, u64)> = (0..a.episodes as u64)
        .flat_map(|k| {
            a.tasks
                .iter()
                .map(move |&t| (t, Split::Train.seed(a.first_episode + k)))
        })
        .collect();
    let mut sink = match a.format {
        DataFormat::Loho if a.append => Sink::Loho(Writer::append(&a.out)?),
        DataFormat::Loho => Sink::Loho(Writer::create(&a.out)?),
        DataFormat::Lerobot => Sink::LeRobot(Box::new(Export {
            dir: &a.out,
            writer: None,
        })),
    };
    let before = sink.len();
    let bar = ProgressBar::new(work.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} episodes  {elapsed} (eta {eta})  {msg}")
            .expect("template"),
    );
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Result<Vec<Labelled>>)>();
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..a.jobs.max(1) {
            let tx = tx.clone();
            let (work, next) = (&work, &next);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(task, seed)) = work.get(i) else {
                    break;
                };
                let r = episode(task, seed, a)
                    .with_context(|| format!("task {} seed {seed}", task.code()));
                if tx.send((i, r)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut due = 0;
        for (i, r) in rx {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&due) {
                sink.add(r?)?;
                due += 1;
                bar.inc(1);
                bar.set_message(format!("{} decisions", sink.len()));
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let n = sink.len() - before;
    if let Sink::LeRobot(e) = sink {
        e.finish()?;
    }
    Ok(n)
}

/// Where decisions go: loho's dataset folder or a LeRobotDataset.
enum Sink<'a> {
    Loho(Writer),
    LeRobot(Box<Export<'a>>),
}

impl Sink<'_> {
    fn add(&mut self, episode: Vec<Labelled>) -> Result<()> {
        let (rows, cols) = (camera::HEIGHT, camera::WIDTH);
        match self {
            Sink::Loho(w) => {
                for (s, rgb, h) in episode {
                    w.add(s, rows, cols, &rgb, &h)?;
                }
                Ok(())
            }
            Sink::LeRobot(e) => {
                let steps: Vec<_> = episode
                    .into_iter()
                    .map(|(s, rgb, height)| {
                        let f = Frame {
                            rows,
                            cols,
                            rgb,
                            height,
                        };
                        (s, f)
                    })
                    .collect();
                e.add(&steps)
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Sink::Loho(w) => w.len(),
            Sink::LeRobot(e) => e.writer.as_ref().map_or(0, |w| w.frames()),
        }
    }
}
