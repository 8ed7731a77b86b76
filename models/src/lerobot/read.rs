//! Reading a loho LeRobotDataset back into samples and frames, checking on the way that
//! `info.json` declares loho's features and every parquet file carries the schema it
//! declares.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type, UInt64Type};
use arrow_array::{Array, RecordBatch, StructArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::data::{decode_png, dequantise, io_err, Sample};
use crate::{Keypose, ModelError};
use loho_core::policy::Frame;

/// The episode columns loho needs.
struct Episode {
    letter: String,
    seed: u64,
    file: usize,
}

fn batches(path: &Path) -> Result<Vec<RecordBatch>, ModelError> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| io_err(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| io_err(path, e))
}

/// A column of `batch` by name, as the array type `T`.
fn col<'a, T: Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
    path: &Path,
) -> Result<&'a T, ModelError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| io_err(path, format!("no column {name:?}")))?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| io_err(path, format!("column {name:?} is not of the type expected")))
}

fn strings(batch: &RecordBatch, name: &str, path: &Path) -> Result<Vec<String>, ModelError> {
    let a = batch
        .column_by_name(name)
        .ok_or_else(|| io_err(path, format!("no column {name:?}")))?;
    let values: Vec<Option<&str>> = match (a.as_string_opt::<i32>(), a.as_string_opt::<i64>()) {
        (Some(s), _) => s.iter().collect(),
        (_, Some(s)) => s.iter().collect(),
        _ => return Err(io_err(path, format!("column {name:?} is not text"))),
    };
    Ok(values
        .into_iter()
        .map(|s| s.unwrap_or_default().to_string())
        .collect())
}

fn ints(batch: &RecordBatch, name: &str, path: &Path) -> Result<Vec<i64>, ModelError> {
    Ok(
        col::<arrow_array::PrimitiveArray<Int64Type>>(batch, name, path)?
            .values()
            .to_vec(),
    )
}

fn keypose(v: &[f32]) -> Keypose {
    Keypose {
        x: v[0] as f64,
        y: v[1] as f64,
        z: v[2] as f64,
        yaw: v[3] as f64,
        suction: v[4] > 0.5,
    }
}

fn png_bytes<'a>(images: &'a StructArray, i: usize, path: &Path) -> Result<&'a [u8], ModelError> {
    let bytes = images
        .column_by_name("bytes")
        .and_then(|b| b.as_binary_opt::<i32>())
        .ok_or_else(|| io_err(path, "an image column without PNG bytes"))?;
    Ok(bytes.value(i))
}

/// Every frame of the dataset in `dir`, in order, with the sample it is a decision of.
/// The samples' `frame` is the name loho's own format would give the frame.
pub fn read(dir: &Path) -> Result<Vec<(Sample, Frame)>, ModelError> {
    let info_path = dir.join(INFO_PATH);
    let text = std::fs::read_to_string(&info_path).map_err(|e| {
        io_err(
            &info_path,
            format!("{e}: not a LeRobot dataset, or its export was cut short"),
        )
    })?;
    let info: Info = serde_json::from_str(&text).map_err(|e| io_err(&info_path, e))?;
    if info.codebase_version != CODEBASE_VERSION {
        return Err(io_err(
            &info_path,
            format!(
                "codebase_version {:?}, loho reads {CODEBASE_VERSION}",
                info.codebase_version
            ),
        ));
    }
    let (rows, cols) = match info.features.get(TOP).map(|f| &f.shape[..]) {
        Some(&[r, c, 3]) => (r, c),
        _ => {
            return Err(io_err(
                &info_path,
                format!("no {TOP} feature of rows × cols × 3"),
            ))
        }
    };
    for (k, want) in features(rows, cols) {
        if info.features.get(&k) != Some(&want) {
            return Err(io_err(
                &info_path,
                format!(
                    "feature {k:?} is {:?}; loho writes {want:?}",
                    info.features.get(&k)
                ),
            ));
        }
    }

    let path = dir.join(TASKS_PATH);
    let mut tasks = vec![];
    for b in batches(&path)? {
        let index = ints(&b, "task_index", &path)?;
        for (i, t) in index
            .into_iter()
            .zip(strings(&b, "__index_level_0__", &path)?)
        {
            let i = i as usize;
            tasks.resize(tasks.len().max(i + 1), None);
            tasks[i] = Some(t);
        }
    }

    let mut episodes = vec![];
    let mut n = 0;
    while dir.join(episodes_path(n)).exists() {
        let path = dir.join(episodes_path(n));
        for b in batches(&path)? {
            let chunk = ints(&b, "data/chunk_index", &path)?;
            let file = ints(&b, "data/file_index", &path)?;
            let seeds = col::<arrow_array::PrimitiveArray<UInt64Type>>(&b, "loho/seed", &path)?;
            let letters = strings(&b, "loho/task", &path)?;
            for (i, letter) in letters.into_iter().enumerate() {
                episodes.push(Episode {
                    letter,
                    seed: seeds.value(i),
                    file: chunk[i] as usize * CHUNK_SIZE + file[i] as usize,
                });
            }
        }
        n += 1;
    }
    if episodes.len() != info.total_episodes {
        return Err(io_err(
            dir,
            format!(
                "{} episodes listed, info.json says {}",
                episodes.len(),
                info.total_episodes
            ),
        ));
    }

    let mut files: Vec<usize> = episodes.iter().map(|e| e.file).collect();
    files.dedup();
    let mut out = Vec::with_capacity(info.total_frames);
    for file in files {
        let path = dir.join(data_path(file));
        for b in batches(&path)? {
            for (k, f) in &info.features {
                let got = b
                    .schema()
                    .field_with_name(k)
                    .map(|f| f.data_type().clone())
                    .ok();
                if got != f.arrow_type() {
                    return Err(io_err(
                        &path,
                        format!(
                            "column {k:?} is {got:?}; info.json declares {:?}",
                            f.arrow_type()
                        ),
                    ));
                }
            }
            read_batch(&b, &path, &tasks, &episodes, rows, cols, &mut out)?;
        }
    }
    if out.len() != info.total_frames {
        return Err(io_err(
            dir,
            format!(
                "{} frames in the data, info.json says {}",
                out.len(),
                info.total_frames
            ),
        ));
    }
    Ok(out)
}

fn read_batch(
    b: &RecordBatch,
    path: &Path,
    tasks: &[Option<String>],
    episodes: &[Episode],
    rows: usize,
    cols: usize,
    out: &mut Vec<(Sample, Frame)>,
) -> Result<(), ModelError> {
    let floats = |name| -> Result<&[f32], ModelError> {
        let list = col::<arrow_array::FixedSizeListArray>(b, name, path)?;
        Ok(list.values().as_primitive::<Float32Type>().values())
    };
    let (state, action) = (floats(STATE)?, floats(ACTION)?);
    let done = col::<arrow_array::BooleanArray>(b, DONE, path)?;
    let (top, height) = (
        col::<StructArray>(b, TOP, path)?,
        col::<StructArray>(b, HEIGHT, path)?,
    );
    let (subtask, alternatives) = (strings(b, SUBTASK, path)?, strings(b, ALTERNATIVES, path)?);
    let (index, frame_index) = (ints(b, "index", path)?, ints(b, "frame_index", path)?);
    let (episode, task) = (
        ints(b, "episode_index", path)?,
        ints(b, "task_index", path)?,
    );
    for i in 0..b.num_rows() {
        let ep = episodes
            .get(episode[i] as usize)
            .ok_or_else(|| io_err(path, format!("row {i}: no episode {}", episode[i])))?;
        let instruction = tasks
            .get(task[i] as usize)
            .cloned()
            .flatten()
            .ok_or_else(|| io_err(path, format!("row {i}: no task {}", task[i])))?;
        let (r, c, rgb) = decode_png(png_bytes(top, i, path)?, png::ColorType::Rgb)?;
        let (hr, hc, grey) = decode_png(png_bytes(height, i, path)?, png::ColorType::Grayscale)?;
        if (r, c) != (rows, cols) || (hr, hc) != (rows, cols) {
            return Err(io_err(
                path,
                format!("row {i}: images are not {rows} × {cols}"),
            ));
        }
        let a = &action[i * 10..(i + 1) * 10];
        let sample = Sample {
            task: ep.letter.clone(),
            seed: ep.seed,
            step: frame_index[i] as usize,
            instruction,
            subtask: subtask[i].clone(),
            keyposes: match done.value(i) {
                true => vec![],
                false => vec![keypose(&a[..5]), keypose(&a[5..])],
            },
            frame: format!("frames/{:07}.png", index[i]),
            alternatives: alternatives[i]
                .lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
            state: Some(keypose(&state[i * 5..(i + 1) * 5])),
        };
        let frame = Frame {
            rows,
            cols,
            rgb,
            height: grey.into_iter().map(dequantise).collect(),
        };
        out.push((sample, frame));
    }
    Ok(())
}
