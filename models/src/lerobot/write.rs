//! Writing a LeRobotDataset, one whole episode at a time.
//!
//! Data files are closed at [`DATA_FILE_MB`] and the next begun, so a long run loses at
//! most the file being written if it is killed. `meta/info.json` is written last: a
//! folder without it is a cut-short export, which [`read`](super::read) refuses.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, FixedSizeListArray, Float32Array, Int64Array, ListArray,
    RecordBatch, StringArray, StructArray, UInt64Array,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde_json::json;

use super::stats::Stats;
use super::*;
use crate::data::{encode_png, io_err, quantise, Sample};
use crate::Keypose;
use crate::ModelError;
use loho_core::policy::Frame;

/// What a finished export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub episodes: usize,
    pub frames: usize,
    pub tasks: usize,
    pub data_files: usize,
}

struct EpisodeRow {
    task: String,
    length: usize,
    file: usize,
    from: usize,
    letter: String,
    seed: u64,
}

pub struct Writer {
    dir: PathBuf,
    rows: usize,
    cols: usize,
    features: BTreeMap<String, Feature>,
    schema: SchemaRef,
    data: Option<ArrowWriter<File>>,
    /// A data file is closed once this big: [`DATA_FILE_MB`], less in tests.
    pub(super) file_mb: u64,
    files: usize,
    episodes: Vec<EpisodeRow>,
    tasks: Vec<String>,
    stats: Stats,
    frames: usize,
}

/// Parquet written as LeRobot writes it (snappy).
fn parquet_file(path: &Path, schema: SchemaRef) -> Result<ArrowWriter<File>, ModelError> {
    std::fs::create_dir_all(path.parent().expect("a file in a folder"))
        .map_err(|e| io_err(path, e))?;
    let file = File::create(path).map_err(|e| io_err(path, e))?;
    // The schema's metadata also as plain key-values, as pyarrow writes it, for readers
    // that do not decode the Arrow schema.
    let kv = schema
        .metadata()
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(kv))
        .build();
    ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| io_err(path, e))
}

fn write_one(path: &Path, batch: RecordBatch) -> Result<(), ModelError> {
    let mut w = parquet_file(path, batch.schema())?;
    w.write(&batch).map_err(|e| io_err(path, e))?;
    w.close().map_err(|e| io_err(path, e))?;
    Ok(())
}

fn pose(k: &Keypose) -> [f32; 5] {
    [
        k.x as f32,
        k.y as f32,
        k.z as f32,
        k.yaw as f32,
        k.suction as u8 as f32,
    ]
}

fn fixed_list(values: Vec<f32>, n: i32) -> ArrayRef {
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    Arc::new(FixedSizeListArray::new(
        item,
        n,
        Arc::new(Float32Array::from(values)),
        None,
    ))
}

fn images(pngs: Vec<Vec<u8>>) -> ArrayRef {
    let n = pngs.len();
    Arc::new(StructArray::new(
        image_fields(),
        vec![
            Arc::new(BinaryArray::from_iter_values(pngs)),
            Arc::new(StringArray::new_null(n)),
        ],
        None,
    ))
}

/// fdeflate: with it an export of 687 flat-shaded frames took 0.5 s instead of 1.3 s
/// with the default deflate, and was no larger.
const FAST: png::Compression = png::Compression::Fast;

/// A frame's two PNGs and its heights as grey bytes (for the stats).
struct Encoded {
    top: Vec<u8>,
    height: Vec<u8>,
    grey: Vec<u8>,
}

/// Each frame's colour PNG, height PNG and grey heights, encoded on every core.
fn encode_all(steps: &[(Sample, Frame)]) -> Result<Vec<Encoded>, ModelError> {
    let one = |f: &Frame| -> Result<_, ModelError> {
        let grey: Vec<u8> = f.height.iter().map(|h| quantise(*h)).collect();
        Ok(Encoded {
            top: encode_png(f.rows, f.cols, png::ColorType::Rgb, FAST, &f.rgb)?,
            height: encode_png(f.rows, f.cols, png::ColorType::Grayscale, FAST, &grey)?,
            grey,
        })
    };
    crate::par_map(steps, crate::cores(), |(_, f)| one(f))
        .into_iter()
        .collect()
}

impl Writer {
    /// A new dataset in `dir` (which must not hold one) of `rows` × `cols` frames.
    pub fn create(dir: &Path, rows: usize, cols: usize) -> Result<Self, ModelError> {
        if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
            return Err(io_err(
                dir,
                "is not empty: a LeRobot dataset is written into a new folder",
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let features = features(rows, cols);
        let fields: Vec<Field> = features
            .iter()
            .map(|(k, f)| Field::new(k, f.arrow_type().expect("loho's features have one"), false))
            .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            rows,
            cols,
            features,
            schema: Arc::new(Schema::new(fields)),
            data: None,
            file_mb: DATA_FILE_MB,
            files: 0,
            episodes: vec![],
            tasks: vec![],
            stats: Stats::default(),
            frames: 0,
        })
    }

    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Adds one episode: its decisions in order, each with its frame.
    pub fn add_episode(&mut self, steps: &[(Sample, Frame)]) -> Result<(), ModelError> {
        let Some((first, _)) = steps.first() else {
            return Err(io_err(&self.dir, "an episode without frames"));
        };
        let n = steps.len();
        let (state, action, done) = self.rows(first, steps)?;
        let task_index = match self.tasks.iter().position(|t| *t == first.instruction) {
            Some(i) => i,
            None => {
                self.tasks.push(first.instruction.clone());
                self.tasks.len() - 1
            }
        };
        let (mut top, mut height) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for ((_, f), e) in steps.iter().zip(encode_all(steps)?) {
            self.stats.add_image(TOP, 3, &f.rgb);
            self.stats.add_image(HEIGHT, 1, &e.grey);
            top.push(e.top);
            height.push(e.height);
        }
        let ep = self.episodes.len() as i64;
        let from = self.frames;
        let frame_index: Vec<i64> = (0..n as i64).collect();
        let index: Vec<i64> = (from as i64..(from + n) as i64).collect();
        let timestamp: Vec<f32> = frame_index.iter().map(|i| *i as f32 / FPS as f32).collect();
        for i in 0..n {
            let at = |v: &Vec<f32>, w: usize| {
                v[i * w..(i + 1) * w]
                    .iter()
                    .map(|x| *x as f64)
                    .collect::<Vec<_>>()
            };
            self.stats.add(STATE, &at(&state, 5));
            self.stats.add(ACTION, &at(&action, 10));
            self.stats.add(DONE, &[done[i] as u8 as f64]);
            for (k, v) in [
                ("timestamp", timestamp[i] as f64),
                ("frame_index", i as f64),
                ("episode_index", ep as f64),
                ("index", (from + i) as f64),
                ("task_index", task_index as f64),
            ] {
                self.stats.add(k, &[v]);
            }
        }
        // Columns by name, in the schema's order.
        let mut columns: BTreeMap<&str, ArrayRef> = BTreeMap::new();
        columns.insert("timestamp", Arc::new(Float32Array::from(timestamp)));
        columns.insert("frame_index", Arc::new(Int64Array::from(frame_index)));
        columns.insert("episode_index", Arc::new(Int64Array::from(vec![ep; n])));
        columns.insert("index", Arc::new(Int64Array::from(index)));
        columns.insert(
            "task_index",
            Arc::new(Int64Array::from(vec![task_index as i64; n])),
        );
        columns.insert(TOP, images(top));
        columns.insert(HEIGHT, images(height));
        columns.insert(STATE, fixed_list(state, 5));
        columns.insert(ACTION, fixed_list(action, 10));
        columns.insert(DONE, Arc::new(BooleanArray::from(done)));
        columns.insert(
            SUBTASK,
            Arc::new(StringArray::from_iter_values(
                steps.iter().map(|(s, _)| &s.subtask),
            )),
        );
        columns.insert(
            ALTERNATIVES,
            Arc::new(StringArray::from_iter_values(
                steps.iter().map(|(s, _)| s.alternatives.join("\n")),
            )),
        );
        let arrays = self
            .features
            .keys()
            .map(|k| columns.remove(k.as_str()).expect("a column per feature"))
            .collect();
        let batch =
            RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| io_err(&self.dir, e))?;

        self.write_batch(&batch)?;
        self.episodes.push(EpisodeRow {
            task: first.instruction.clone(),
            length: n,
            file: self.files,
            from,
            letter: first.task.clone(),
            seed: first.seed,
        });
        self.frames += n;
        Ok(())
    }

    /// The state, action (pick then place) and done columns of an episode's steps, each
    /// checked: one task, seed and instruction, frames of the dataset's size, an arm state.
    #[allow(clippy::type_complexity)]
    fn rows(
        &self,
        first: &Sample,
        steps: &[(Sample, Frame)],
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<bool>), ModelError> {
        let where_ = |s: &Sample| format!("task {} seed {} step {}", s.task, s.seed, s.step);
        let (mut state, mut action, mut done) = (vec![], vec![], vec![]);
        for (s, f) in steps {
            if s.instruction != first.instruction || s.task != first.task || s.seed != first.seed {
                return Err(ModelError::Data(format!(
                    "{}: an episode is one task, seed and instruction; {} differs",
                    where_(first),
                    where_(s)
                )));
            }
            let pixels = f.rows * f.cols;
            if (f.rows, f.cols) != (self.rows, self.cols)
                || f.rgb.len() != pixels * 3
                || f.height.len() != pixels
            {
                return Err(ModelError::FrameSize {
                    expected: (self.rows, self.cols),
                    rgb: f.rgb.len(),
                    height: f.height.len(),
                });
            }
            let st = s.state.ok_or_else(|| {
                ModelError::Data(format!(
                    "{}: no arm state (the dataset predates it); regenerate it with `loho gen-data`",
                    where_(s)
                ))
            })?;
            let (pick, place) = match s.keyposes[..] {
                [pick, place] => (pick, place),
                [] => (st, st),
                _ => {
                    return Err(ModelError::Data(format!(
                        "{}: {} keyposes where a decision has 2 (pick, place) or none (done)",
                        where_(s),
                        s.keyposes.len()
                    )))
                }
            };
            state.extend(pose(&st));
            action.extend(pose(&pick).into_iter().chain(pose(&place)));
            done.push(s.keyposes.is_empty());
        }
        Ok((state, action, done))
    }

    /// `batch` into the current data file, or a new one once the current is full.
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), ModelError> {
        let full = self.data.as_ref().is_some_and(|w| {
            w.bytes_written() + w.in_progress_size() >= (self.file_mb << 20) as usize
        });
        if full {
            self.close_data()?;
        }
        let path = self.dir.join(data_path(self.files));
        if self.data.is_none() {
            self.data = Some(parquet_file(&path, self.schema.clone())?);
        }
        let w = self.data.as_mut().expect("opened above");
        w.write(batch).map_err(|e| io_err(&path, e))?;
        Ok(())
    }

    fn close_data(&mut self) -> Result<(), ModelError> {
        if let Some(w) = self.data.take() {
            let path = self.dir.join(data_path(self.files));
            w.close().map_err(|e| io_err(&path, e))?;
            self.files += 1;
        }
        Ok(())
    }

    /// Closes the data and writes the metadata: episodes, tasks, stats, and info last.
    pub fn finish(mut self) -> Result<Summary, ModelError> {
        self.close_data()?;
        let eps = &self.episodes;
        let int = |f: &dyn Fn(usize, &EpisodeRow) -> usize| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                eps.iter().enumerate().map(|(i, e)| f(i, e) as i64),
            ))
        };
        let tasks_list: ArrayRef = {
            let values = StringArray::from_iter_values(eps.iter().map(|e| &e.task));
            Arc::new(ListArray::new(
                Arc::new(Field::new("item", DataType::Utf8, true)),
                OffsetBuffer::from_lengths(vec![1; eps.len()]),
                Arc::new(values),
                None,
            ))
        };
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("episode_index", int(&|i, _| i)),
            ("tasks", tasks_list),
            ("length", int(&|_, e| e.length)),
            ("data/chunk_index", int(&|_, e| e.file / CHUNK_SIZE)),
            ("data/file_index", int(&|_, e| e.file % CHUNK_SIZE)),
            ("dataset_from_index", int(&|_, e| e.from)),
            ("dataset_to_index", int(&|_, e| e.from + e.length)),
            ("meta/episodes/chunk_index", int(&|_, _| 0)),
            ("meta/episodes/file_index", int(&|_, _| 0)),
            (
                "loho/task",
                Arc::new(StringArray::from_iter_values(eps.iter().map(|e| &e.letter))),
            ),
            (
                "loho/seed",
                Arc::new(UInt64Array::from_iter_values(eps.iter().map(|e| e.seed))),
            ),
        ];
        let batch = RecordBatch::try_from_iter(columns).map_err(|e| io_err(&self.dir, e))?;
        write_one(&self.dir.join(episodes_path(0)), batch)?;

        // pandas restores the task strings as the frame's index from the `pandas` entry of
        // the Arrow schema's metadata; pyarrow writes it like this.
        let pandas = json!({
            "index_columns": ["__index_level_0__"],
            "column_indexes": [{"name": null, "field_name": null, "pandas_type": "unicode",
                "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
            "columns": [
                {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                    "numpy_type": "int64", "metadata": null},
                {"name": null, "field_name": "__index_level_0__", "pandas_type": "unicode",
                    "numpy_type": "object", "metadata": null}],
            "attributes": {},
            "creator": {"library": "loho", "version": env!("CARGO_PKG_VERSION")},
        });
        let schema = Schema::new(vec![
            Field::new("task_index", DataType::Int64, false),
            Field::new("__index_level_0__", DataType::Utf8, false),
        ])
        .with_metadata(std::collections::HashMap::from([(
            "pandas".to_string(),
            pandas.to_string(),
        )]));
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from_iter_values(0..self.tasks.len() as i64)),
                Arc::new(StringArray::from_iter_values(&self.tasks)),
            ],
        )
        .map_err(|e| io_err(&self.dir, e))?;
        write_one(&self.dir.join(TASKS_PATH), batch)?;

        let json_file = |rel: &str, v: &serde_json::Value| {
            let path = self.dir.join(rel);
            let text = serde_json::to_string_pretty(v).map_err(|e| io_err(&path, e))?;
            std::fs::write(&path, text).map_err(|e| io_err(&path, e))
        };
        json_file(STATS_PATH, &self.stats.to_json())?;
        let info = Info {
            codebase_version: CODEBASE_VERSION.into(),
            robot_type: ROBOT_TYPE.into(),
            total_episodes: eps.len(),
            total_frames: self.frames,
            total_tasks: self.tasks.len(),
            chunks_size: CHUNK_SIZE,
            data_files_size_in_mb: DATA_FILE_MB,
            video_files_size_in_mb: 200,
            fps: FPS,
            splits: [("train".to_string(), format!("0:{}", eps.len()))].into(),
            data_path: DATA_PATH.into(),
            video_path: None,
            features: self.features.clone(),
        };
        json_file(INFO_PATH, &serde_json::to_value(&info).expect("plain data"))?;
        Ok(Summary {
            episodes: eps.len(),
            frames: self.frames,
            tasks: self.tasks.len(),
            data_files: self.files,
        })
    }
}
