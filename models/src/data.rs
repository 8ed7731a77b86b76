//! Demonstration datasets on disk: a folder with `samples.jsonl` (one decision per line:
//! instruction, sub-task, keyposes) and `frames/NNNNNNN.png`.
//!
//! Frames are stored clean, as RGBA PNGs whose alpha is the height quantised to
//! [`HEIGHT_MAX`] / 254 (1.1 mm, finer than the benchmark's 3 mm depth noise), and 255 for
//! a cell no camera saw (NaN in the frame, from `--camera benchmark`): a frame is
//! ~10–20 kB instead of 200 kB raw, so 100 000 decisions fit in memory. Observation noise
//! is drawn fresh at training time, so each epoch sees new noise.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::keypose::Keypose;
use crate::ModelError;
use loho_core::policy::Frame;

/// Heights are stored in [0, HEIGHT_MAX] metres (the camera's clip height).
pub const HEIGHT_MAX: f32 = 0.28;
/// The alpha of a cell no camera saw; heights use 0..UNSEEN.
const UNSEEN: u8 = 255;
pub const INDEX: &str = "samples.jsonl";

/// One decision of a demonstration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub task: String,
    pub seed: u64,
    pub step: usize,
    pub instruction: String,
    pub subtask: String,
    /// Pick and place; empty when the sub-task is the task's "done" sentence.
    pub keyposes: Vec<Keypose>,
    /// PNG file, relative to the dataset folder.
    pub frame: String,
    /// Other sub-tasks that are as right as `subtask` here (any remaining block of B, in
    /// any order); training accepts each of them. Empty when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<String>,
    /// The tool's pose and suction when the frame was taken (LeRobot's
    /// `observation.state`); absent in datasets written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Keypose>,
}

pub(crate) fn io_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Data(format!("{}: {e}", path.display()))
}

/// Writes a dataset folder, one sample at a time; the index is flushed per sample so a
/// killed run leaves a readable prefix.
pub struct Writer {
    dir: PathBuf,
    index: BufWriter<File>,
    count: usize,
}

impl Writer {
    pub fn create(dir: &Path) -> Result<Self, ModelError> {
        std::fs::create_dir_all(dir.join("frames")).map_err(|e| io_err(dir, e))?;
        let path = dir.join(INDEX);
        let index = BufWriter::new(File::create(&path).map_err(|e| io_err(&path, e))?);
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
            count: 0,
        })
    }

    /// A dataset in `dir` to add to: its index is kept and new frames are numbered after
    /// the last (a new one if there is none).
    pub fn append(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(INDEX);
        if !path.exists() {
            return Self::create(dir);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
        let count = text.lines().filter(|l| !l.trim().is_empty()).count();
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            index: BufWriter::new(file),
            count,
        })
    }

    /// Adds one decision with its frame (rows × cols, RGB bytes, heights in metres).
    pub fn add(
        &mut self,
        mut sample: Sample,
        rows: usize,
        cols: usize,
        rgb: &[u8],
        height: &[f32],
    ) -> Result<(), ModelError> {
        sample.frame = format!("frames/{:07}.png", self.count);
        let path = self.dir.join(&sample.frame);
        std::fs::write(&path, encode_frame(rows, cols, rgb, height)?)
            .map_err(|e| io_err(&path, e))?;
        let line = serde_json::to_string(&sample).map_err(|e| io_err(&path, e))?;
        writeln!(self.index, "{line}")
            .and_then(|_| self.index.flush())
            .map_err(|e| io_err(&self.dir, e))?;
        self.count += 1;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A height in metres as stored: 0..=254 over [0, HEIGHT_MAX], [`UNSEEN`] for NaN.
pub(crate) fn quantise(h: f32) -> u8 {
    if h.is_nan() {
        return UNSEEN;
    }
    (h / HEIGHT_MAX * (UNSEEN - 1) as f32)
        .round()
        .clamp(0.0, (UNSEEN - 1) as f32) as u8
}

/// The height in metres a stored byte stands for (NaN for [`UNSEEN`]).
pub(crate) fn dequantise(a: u8) -> f32 {
    match a {
        UNSEEN => f32::NAN,
        a => a as f32 / (UNSEEN - 1) as f32 * HEIGHT_MAX,
    }
}

fn encode_frame(
    rows: usize,
    cols: usize,
    rgb: &[u8],
    height: &[f32],
) -> Result<Vec<u8>, ModelError> {
    let mut data = Vec::with_capacity(rows * cols * 4);
    for (c, h) in rgb.chunks(3).zip(height) {
        data.extend_from_slice(c);
        data.push(quantise(*h));
    }
    encode_png(
        rows,
        cols,
        png::ColorType::Rgba,
        png::Compression::Balanced,
        &data,
    )
}

/// An 8-bit PNG of `rows` × `cols` pixels of `color`.
pub(crate) fn encode_png(
    rows: usize,
    cols: usize,
    color: png::ColorType,
    compression: png::Compression,
    data: &[u8],
) -> Result<Vec<u8>, ModelError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, cols as u32, rows as u32);
    enc.set_color(color);
    enc.set_compression(compression);
    enc.set_depth(png::BitDepth::Eight);
    let png_err = |e: png::EncodingError| ModelError::Data(e.to_string());
    enc.write_header()
        .map_err(png_err)?
        .write_image_data(data)
        .map_err(png_err)?;
    Ok(out)
}

/// An 8-bit PNG of `color`: its rows, columns and pixels.
pub(crate) fn decode_png(
    bytes: &[u8],
    color: png::ColorType,
) -> Result<(usize, usize, Vec<u8>), ModelError> {
    let png_err = |e: png::DecodingError| ModelError::Data(e.to_string());
    let mut reader = png::Decoder::new(Cursor::new(bytes))
        .read_info()
        .map_err(png_err)?;
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader.next_frame(&mut buf).map_err(png_err)?;
    if info.color_type != color || info.bit_depth != png::BitDepth::Eight {
        return Err(ModelError::Data(format!(
            "image is {:?} {:?}, expected 8-bit {color:?}",
            info.bit_depth, info.color_type
        )));
    }
    buf.truncate(info.buffer_size());
    Ok((info.height as usize, info.width as usize, buf))
}

fn decode_frame(bytes: &[u8]) -> Result<Frame, ModelError> {
    let (rows, cols, px) = decode_png(bytes, png::ColorType::Rgba)?;
    Ok(Frame {
        rows,
        cols,
        rgb: px.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        height: px.chunks(4).map(|p| dequantise(p[3])).collect(),
    })
}

/// A dataset in memory: the samples and their compressed frames.
pub struct Dataset {
    pub samples: Vec<Sample>,
    pub(crate) frames: Vec<Vec<u8>>,
}

impl Dataset {
    pub fn open(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(INDEX);
        let f = File::open(&path).map_err(|e| io_err(&path, e))?;
        let mut samples = Vec::new();
        let mut frames = Vec::new();
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| io_err(&path, e))?;
            let s: Sample = serde_json::from_str(&line)
                .map_err(|e| io_err(&path, format!("line {}: {e}", i + 1)))?;
            let fp = dir.join(&s.frame);
            frames.push(std::fs::read(&fp).map_err(|e| io_err(&fp, e))?);
            samples.push(s);
        }
        Ok(Self { samples, frames })
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn frame(&self, i: usize) -> Result<Frame, ModelError> {
        decode_frame(&self.frames[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_samples_round_trip() {
        let dir = std::env::temp_dir().join(format!("loho-data-{}", std::process::id()));
        let (rows, cols) = (8, 4);
        let rgb: Vec<u8> = (0..rows * cols * 3).map(|i| (i * 7 % 256) as u8).collect();
        let mut height: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.008).collect();
        height[5] = f32::NAN;
        let sample = Sample {
            task: "B".into(),
            seed: 4,
            step: 1,
            instruction: "put the blocks in the bowls with matching colors.".into(),
            subtask: "pick up the red block and place it on the red bowl.".into(),
            keyposes: vec![Keypose {
                x: 0.5,
                y: 0.1,
                z: 0.04,
                yaw: 0.3,
                suction: true,
            }],
            frame: String::new(),
            alternatives: vec!["pick up the blue block and place it on the blue bowl.".into()],
            state: None,
        };
        let mut w = Writer::create(&dir).unwrap();
        w.add(sample.clone(), rows, cols, &rgb, &height).unwrap();
        w.add(sample.clone(), rows, cols, &rgb, &height).unwrap();
        drop(w);
        let d = Dataset::open(&dir).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.samples[1].subtask, sample.subtask);
        assert_eq!(d.samples[1].alternatives, sample.alternatives);
        assert_eq!(d.samples[1].frame, "frames/0000001.png");
        let f = d.frame(1).unwrap();
        assert_eq!((f.rows, f.cols), (rows, cols));
        assert_eq!(f.rgb, rgb);
        for (a, b) in f.height.iter().zip(&height) {
            if b.is_nan() {
                assert!(a.is_nan(), "an unseen cell stays unseen");
                continue;
            }
            let want = b.min(HEIGHT_MAX);
            assert!(
                (a - want).abs() <= HEIGHT_MAX / 508.0 + 1e-6,
                "{a} vs {want}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
