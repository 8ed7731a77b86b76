//! Pictures of scenes: `loho render` (PNG), `loho tasks`, and the GIF of `loho run`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use loho_sim::camera::{self, Heightmap};
use loho_sim::env::Env;
use loho_sim::world::World;
use loho_sim::{Split, TaskId, ALL_TASKS, FAMILIES};

use crate::args::EpisodeArgs;

#[derive(Args, Debug)]
pub struct RenderCmd {
    #[command(flatten)]
    pub episode: EpisodeArgs,
    #[command(flatten)]
    pub draw: crate::args::DrawArgs,
    #[arg(long)]
    pub out: PathBuf,
}

/// `loho tasks`: the eleven tasks (or the families), each with an instruction of test
/// episode 0, or their templates and slots.
#[derive(clap::Args, Debug)]
pub struct TasksCmd {
    /// Each task's instruction with its `{slot}`s, the names an instruction file's texts
    /// use (`eval --instructions`, `gen-data --instructions`).
    #[arg(long)]
    pub slots: bool,
    /// The task families (L–Z and AA–AE, loho's own, for training; docs/simulator.md) instead of
    /// the eleven.
    #[arg(long)]
    pub families: bool,
}

pub fn tasks(c: TasksCmd) -> Result<()> {
    let tasks: &[TaskId] = if c.families { &FAMILIES } else { &ALL_TASKS };
    let slots = |t: TaskId| match t.slots() {
        s if s.is_empty() => "-".to_string(),
        s => s.join(", "),
    };
    let width = tasks.iter().map(|&t| slots(t).len()).max().unwrap_or(0);
    let code = tasks.iter().map(|&t| t.code().len()).max().unwrap_or(0);
    let mut text = String::new();
    for &t in tasks {
        let line = if c.slots {
            format!("{:<code$}  {:<width$} {}", t.code(), slots(t), t.template())
        } else {
            let env = Env::new(t, Split::Test, Split::Test.seed(0))?;
            format!(
                "{:<code$}  {:<62} {}",
                t.code(),
                t.name(),
                env.instruction()
            )
        };
        text += &line;
        text.push('\n');
    }
    let written = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(written.or_else(quiet_broken_pipe)?)
}

/// A reader that stopped reading (`loho tasks | head -3`) ends the listing, not the
/// process with a panic.
fn quiet_broken_pipe(e: std::io::Error) -> std::io::Result<()> {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(e),
    }
}

/// `loho render`: one scene as a picture strip.
pub fn command(c: RenderCmd) -> Result<()> {
    let env = c.episode.env(&c.draw.draw(0.0)?)?;
    scene_strip(env.world(), &env.observe()).save_png(&c.out)?;
    println!("{}\nwrote {}", env.instruction(), c.out.display());
    Ok(())
}

/// An RGB picture.
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<[u8; 3]>,
}

impl Picture {
    fn blank(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            pixels: vec![[255; 3]; width * height],
        }
    }
    fn blit(&mut self, x0: usize, src: &Picture) {
        for r in 0..src.height.min(self.height) {
            for c in 0..src.width {
                self.pixels[r * self.width + x0 + c] = src.pixels[r * src.width + c];
            }
        }
    }
    pub fn save_png(&self, path: &Path) -> Result<()> {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut enc = png::Encoder::new(BufWriter::new(f), self.width as u32, self.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        let bytes: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        w.write_image_data(&bytes)?;
        Ok(())
    }
}

/// Colour heightmap, height as grey (white = 0.28 m), and the perspective view, side by
/// side with a small gap.
pub fn scene_strip(world: &World, hm: &Heightmap) -> Picture {
    let (w, h) = (camera::WIDTH, camera::HEIGHT);
    let colour = Picture {
        width: w,
        height: h,
        pixels: hm.color.clone(),
    };
    let depth = Picture {
        width: w,
        height: h,
        pixels: hm
            .height
            .iter()
            .map(|&z| [(z as f64 / camera::Z_MAX * 255.0).round() as u8; 3])
            .collect(),
    };
    let (pw, ph) = (h * 4 / 3, h);
    let persp = Picture {
        width: pw,
        height: ph,
        pixels: camera::perspective(world, pw, ph),
    };
    let gap = 8;
    let mut out = Picture::blank(2 * w + pw + 2 * gap, h);
    out.blit(0, &colour);
    out.blit(w + gap, &depth);
    out.blit(2 * (w + gap), &persp);
    out
}

/// An animated GIF of top-down colour frames (`rgb8`, the camera's size), one every
/// half second, looping.
pub fn write_gif(path: &Path, frames: &[Vec<u8>]) -> Result<()> {
    let (w, h) = (camera::WIDTH as u16, camera::HEIGHT as u16);
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut enc = gif::Encoder::new(BufWriter::new(file), w, h, &[])
        .with_context(|| format!("writing {}", path.display()))?;
    enc.set_repeat(gif::Repeat::Infinite)?;
    for rgb in frames
        .iter()
        .filter(|f| f.len() == w as usize * h as usize * 3)
    {
        let mut frame = gif::Frame::from_rgb_speed(w, h, rgb, 10);
        frame.delay = 50;
        enc.write_frame(&frame)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
