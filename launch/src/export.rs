//! `loho export lerobot`: demonstrations (a `loho gen-data` folder) or recordings (`loho
//! run` MCAP files) as a LeRobotDataset v3.0 ([`loho_models::lerobot`]).
//!
//! A dataset folder's episodes are its runs of one task and seed. A recording is one
//! episode: each `policy/action` chunk is a decision, with the camera frame it was made
//! on (its `obs_stamp`), the arm's state when that frame came (its first state, for a
//! frame before it), and the instruction. A recording cut short is read up to the cut.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use loho_core::msg::{ActionChunk, ArmState, EpisodeEvent, Image, Message, StringMsg};
use loho_core::policy::codec::chunk_decision;
use loho_core::policy::Frame;
use loho_models::data::{Dataset, Sample};
use loho_models::lerobot::{Summary, Writer};
use loho_models::Keypose;
use loho_runtime::keys;
use loho_runtime::replay::topic_of;
use loho_sim::TaskId;

#[derive(Subcommand, Debug)]
pub enum ExportCmd {
    /// A LeRobotDataset v3.0, as Hugging Face LeRobot reads it (see docs/lerobot.md).
    Lerobot(ExportLerobotCmd),
}

#[derive(Args, Debug)]
pub struct ExportLerobotCmd {
    /// `loho gen-data` folders and `loho run` MCAP recordings, in the order to export.
    #[arg(long = "from", required = true, num_args = 1..)]
    pub from: Vec<PathBuf>,
    /// A new, empty folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// `loho export`.
pub fn command(c: ExportCmd) -> Result<()> {
    let ExportCmd::Lerobot(c) = c;
    let start = Instant::now();
    let s = lerobot(&c.from, &c.out)?;
    println!(
        "wrote {} episodes, {} frames, {} tasks to {} in {:.1} s",
        s.episodes,
        s.frames,
        s.tasks,
        c.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Exports dataset folders and recordings, in order, as a LeRobotDataset in `out`.
pub fn lerobot(from: &[PathBuf], out: &Path) -> Result<Summary> {
    let mut export = Export {
        dir: out,
        writer: None,
    };
    for src in from {
        if src.join(loho_models::data::INDEX).exists() {
            from_dataset(src, &mut export)
        } else if src.extension().is_some_and(|e| e == "mcap") {
            from_recording(src, &mut export)
        } else {
            bail!("neither a dataset folder (with samples.jsonl) nor an .mcap recording")
        }
        .with_context(|| src.display().to_string())?;
    }
    export.finish()
}

/// The writer, made when the first episode gives the frame size.
pub struct Export<'a> {
    pub dir: &'a Path,
    pub writer: Option<Writer>,
}

impl Export<'_> {
    pub fn add(&mut self, steps: &[(Sample, Frame)]) -> Result<()> {
        let Some((_, f)) = steps.first() else {
            return Ok(());
        };
        let w = match &mut self.writer {
            Some(w) => w,
            w => w.insert(Writer::create(self.dir, f.rows, f.cols)?),
        };
        Ok(w.add_episode(steps)?)
    }

    pub fn finish(self) -> Result<Summary> {
        let w = self.writer.context("no episodes to export")?;
        Ok(w.finish()?)
    }
}

fn bar(len: usize, what: &str) -> ProgressBar {
    ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {what}  {{elapsed}}"))
            .expect("template"),
    )
}

fn from_dataset(dir: &Path, out: &mut Export) -> Result<()> {
    let d = Dataset::open(dir)?;
    let bar = bar(d.len(), "decisions");
    let mut first = 0;
    for i in 1..=d.len() {
        let (a, b) = (&d.samples[i - 1], d.samples.get(i));
        if b.is_some_and(|b| a.task == b.task && a.seed == b.seed && b.step > a.step) {
            continue;
        }
        let idx: Vec<usize> = (first..i).collect();
        let steps = loho_models::par_map(&idx, loho_models::cores(), |&j| {
            d.frame(j).map(|f| (d.samples[j].clone(), f))
        })
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        out.add(&steps)?;
        bar.inc((i - first) as u64);
        first = i;
    }
    bar.finish_and_clear();
    Ok(())
}

/// The state as a keypose: the tool's pose and whether its suction is on.
fn state(s: &ArmState) -> Keypose {
    let p = &s.ee_pose.position;
    Keypose {
        x: p.x,
        y: p.y,
        z: p.z,
        yaw: s.ee_pose.yaw(),
        suction: s.gripper > 0.5,
    }
}

/// Frames kept while waiting for the chunk decided on them.
const FRAMES_KEPT: usize = 64;

/// A camera frame of a recording, as its two images come.
struct Pending {
    stamp: f64,
    color: Option<Image>,
    depth: Option<Image>,
    /// The arm's state when the frame came.
    state: Option<ArmState>,
}

fn from_recording(path: &Path, out: &mut Export) -> Result<()> {
    let bytes = std::fs::read(path)?;
    let options = mcap::read::Options::IgnoreEndMagic.into();
    // Newest last.
    let mut frames: Vec<Pending> = vec![];
    let (mut arm, mut instruction, mut event) = (None::<ArmState>, None::<String>, None);
    let mut decisions = vec![];
    let stream = mcap::MessageStream::new_with_options(&bytes, options)?;
    // A recording cut short by a kill is read up to the cut.
    for m in stream.map_while(Result::ok) {
        let Some(topic) = topic_of(&m.channel.topic) else {
            continue;
        };
        let data = &m.data[..];
        let at = || format!("{topic} logged at {} ns", m.log_time);
        match topic {
            keys::COLOR | keys::DEPTH => {
                let img = Image::decode(data).with_context(at)?;
                let t = img.header.stamp.as_secs_f64();
                let i = match frames.iter().position(|f| f.stamp == t) {
                    Some(i) => i,
                    None => {
                        frames.push(Pending {
                            stamp: t,
                            color: None,
                            depth: None,
                            state: arm.clone(),
                        });
                        if frames.len() > FRAMES_KEPT {
                            frames.remove(0);
                        }
                        frames.len() - 1
                    }
                };
                match topic {
                    keys::COLOR => frames[i].color = Some(img),
                    _ => frames[i].depth = Some(img),
                }
            }
            keys::STATE => {
                let state = ArmState::decode(data).with_context(at)?;
                // A frame that came before the arm's first state gets the first one:
                // the arm has not moved before the first decision.
                for f in frames.iter_mut().filter(|f| f.state.is_none()) {
                    f.state = Some(state.clone());
                }
                arm = Some(state);
            }
            keys::INSTRUCTION => instruction = Some(StringMsg::decode(data).with_context(at)?.data),
            keys::EPISODE if event.is_none() => {
                event = Some(EpisodeEvent::decode(data).with_context(at)?)
            }
            keys::ACTION => {
                let chunk = ActionChunk::decode(data).with_context(at)?;
                let t = chunk.obs_stamp.as_secs_f64();
                let f = frames
                    .iter()
                    .find(|f| (f.stamp - t).abs() < 1e-6)
                    .with_context(|| {
                        format!(
                            "chunk {}: no frame at its obs_stamp {t:.6} s",
                            chunk.chunk_id
                        )
                    })?;
                let (Some(c), Some(d), Some(s)) = (&f.color, &f.depth, &f.state) else {
                    bail!(
                        "chunk {}: its frame lacks colour, depth or the arm's state",
                        chunk.chunk_id
                    );
                };
                let frame = Frame::from_images(c, d).map_err(anyhow::Error::msg)?;
                let keyposes = chunk_decision(&chunk)
                    .map_err(anyhow::Error::msg)?
                    .keyposes();
                let sample = Sample {
                    task: String::new(),
                    seed: 0,
                    step: decisions.len(),
                    instruction: instruction
                        .clone()
                        .context("a chunk before any instruction")?,
                    subtask: chunk.subtask,
                    keyposes,
                    frame: String::new(),
                    alternatives: vec![],
                    state: Some(state(s)),
                };
                decisions.push((sample, frame));
            }
            _ => {}
        }
    }
    let ev = event.context("no episode topic: record every topic, as `loho run` does")?;
    ensure!(
        !decisions.is_empty(),
        "no policy/action chunks: nothing to export"
    );
    let task = TaskId::parse(&ev.task).map_or(ev.task.clone(), |t| t.code().to_string());
    for (s, _) in &mut decisions {
        s.task.clone_from(&task);
        s.seed = ev.seed;
    }
    out.add(&decisions)
}
