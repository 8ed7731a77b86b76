//! Recording every topic of a robot into an MCAP file (the log format of Foxglove and
//! the `mcap` tools): one channel per topic, named as ROS 2 names it
//! (`/loho/arm0/state`), with its `ros2msg` schema (the type's definition followed by
//! those of the types it uses) and `cdr` message encoding, so `ros2 bag` and Foxglove
//! read it with no loho code.
//!
//! Samples are written by a thread of their own, so a slow disk never blocks a zenoh
//! callback, in zstd-compressed chunks closed and handed to the OS at least every
//! [`FLUSH_EVERY`]: a recorder killed outright (`kill -9`, a power cut aside) leaves a file
//! whose chunks up to then a reader decodes. The file has its index once
//! [`Recorder::finish`] returns.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::bus::{Bus, BusError, RawSubscription};
use crate::keys::{topic_type, TOPICS};
use loho_core::msgdef;

#[derive(Debug, Error)]
pub enum RecordError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Mcap {
        path: PathBuf,
        source: mcap::McapError,
    },
    #[error(
        "unknown topic {topic:?}: expected one of {}, or camera/<name>/color|depth|info",
        known()
    )]
    UnknownTopic { topic: String },
    #[error("replay speed {0}: expected a number > 0")]
    Speed(f64),
}

fn known() -> String {
    TOPICS
        .iter()
        .map(|(t, _)| *t)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that each of `topics` is one [`topic_type`] knows.
pub fn check_topics(topics: &[String]) -> Result<(), RecordError> {
    match topics.iter().find(|t| topic_type(t).is_none()) {
        Some(t) => Err(RecordError::UnknownTopic { topic: t.clone() }),
        None => Ok(()),
    }
}

/// The longest a recording keeps messages before its chunk goes to the file.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The `ros2msg` schema text of a type: its definition, then each type it uses once,
/// after a line of `=` and `MSG: pkg/Type`, as `ros2 bag` writes them.
pub fn ros2msg_schema(type_name: &str) -> Option<String> {
    let mut out = msgdef::definition(type_name)?.to_string();
    let mut seen = vec![type_name.to_string()];
    let mut todo = vec![type_name.to_string()];
    while let Some(t) = todo.pop() {
        for field in msgdef::fields(&t)? {
            let Some(full) = field.nested() else {
                continue;
            };
            if seen.iter().any(|s| s == full) {
                continue;
            }
            let def = msgdef::definition(full)?;
            let short = full.replace("/msg/", "/");
            out.push_str(&format!("{}\nMSG: {short}\n{def}", "=".repeat(80)));
            seen.push(full.to_string());
            todo.push(full.to_string());
        }
    }
    Some(out)
}

/// What a finished recording holds.
#[derive(Debug, Clone, Default)]
pub struct RecordSummary {
    pub path: PathBuf,
    /// Messages per topic.
    pub messages: BTreeMap<String, u64>,
    /// Samples on keys that are neither loho's topics nor cameras (not written).
    pub skipped: u64,
}

/// A recording in progress.
pub struct Recorder {
    subs: Vec<RawSubscription>,
    tx: Option<mpsc::Sender<(String, Vec<u8>, u64)>>,
    writer: Option<JoinHandle<Result<RecordSummary, RecordError>>>,
}

impl Recorder {
    /// Starts recording `topics` of `bus`'s robot (all of them when empty) into a new
    /// file at `path`.
    pub fn start(bus: &Bus, path: &Path, topics: &[String]) -> Result<Self, RecordError> {
        check_topics(topics)?;
        let io = |source| RecordError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mc = |source| RecordError::Mcap {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = File::create(path).map_err(io)?;
        let mut w = mcap::WriteOptions::new()
            .compression(Some(mcap::Compression::Zstd))
            .profile("ros2")
            .create(BufWriter::new(file))
            .map_err(mc)?;
        // Every topic of loho recorded has its channel from the start; cameras get
        // theirs with their first message.
        let mut schemas = HashMap::new();
        let prefix = bus.key("");
        let mut channel = move |w: &mut mcap::Writer<BufWriter<File>>, topic: &str, ty: &str| {
            let sid = match schemas.get(ty) {
                Some(&sid) => sid,
                None => {
                    let schema = ros2msg_schema(ty).expect("every topic's type is defined");
                    let sid = w.add_schema(ty, "ros2msg", schema.as_bytes())?;
                    schemas.insert(ty.to_string(), sid);
                    sid
                }
            };
            w.add_channel(sid, &format!("/{prefix}{topic}"), "cdr", &BTreeMap::new())
        };
        let mut channels = HashMap::new();
        let wanted = |t: &str| topics.is_empty() || topics.iter().any(|w| w == t);
        for (topic, ty) in TOPICS.iter().filter(|(t, _)| wanted(t)) {
            let cid = channel(&mut w, topic, ty).map_err(mc)?;
            channels.insert(topic.to_string(), (cid, 0u32));
        }
        let (tx, rx) = mpsc::channel::<(String, Vec<u8>, u64)>();
        let path = path.to_path_buf();
        let writer = std::thread::spawn(move || {
            let mc = |source| RecordError::Mcap {
                path: path.clone(),
                source,
            };
            let mut summary = RecordSummary {
                path: path.clone(),
                ..Default::default()
            };
            let mut flushed = Instant::now();
            loop {
                if flushed.elapsed() >= FLUSH_EVERY {
                    w.flush().map_err(mc)?;
                    flushed = Instant::now();
                }
                let (topic, bytes, t) = match rx.recv_timeout(FLUSH_EVERY / 4) {
                    Ok(m) => m,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                };
                if !channels.contains_key(&topic) {
                    let Some(ty) = topic_type(&topic) else {
                        summary.skipped += 1;
                        continue;
                    };
                    let cid = channel(&mut w, &topic, ty).map_err(mc)?;
                    channels.insert(topic.clone(), (cid, 0));
                }
                let (cid, seq) = channels.get_mut(&topic).expect("inserted above");
                *seq += 1;
                let header = mcap::records::MessageHeader {
                    channel_id: *cid,
                    sequence: *seq,
                    log_time: t,
                    publish_time: t,
                };
                w.write_to_known_channel(&header, &bytes).map_err(mc)?;
                *summary.messages.entry(topic).or_default() += 1;
            }
            w.finish().map_err(mc)?;
            Ok(summary)
        });
        let on = |sink: mpsc::Sender<_>| {
            move |topic: &str, bytes| {
                let _ = sink.send((topic.to_string(), bytes, loho_core::clock::wall_ns()));
            }
        };
        let subs = if topics.is_empty() {
            vec![bus.subscribe_all(on(tx.clone()))?]
        } else {
            let mut subs = Vec::new();
            for t in topics {
                subs.push(bus.subscribe_raw(t, on(tx.clone()))?);
            }
            subs
        };
        Ok(Self {
            subs,
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    /// Stops recording and writes the file's index and footer.
    pub fn finish(mut self) -> Result<RecordSummary, RecordError> {
        self.subs.clear();
        self.tx.take();
        match self.writer.take().map(|w| w.join()) {
            Some(Ok(r)) => r,
            _ => Err(RecordError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other("the MCAP writer thread failed"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn schemas_list_each_used_type_once_after_the_type_itself() {
        let s = super::ros2msg_schema("loho_msgs/msg/ActionChunk").unwrap();
        assert!(s.starts_with("# A policy decision"));
        for dep in [
            "MSG: std_msgs/Header\n",
            "MSG: builtin_interfaces/Time\n",
            "MSG: loho_msgs/Keypose\n",
            "MSG: geometry_msgs/Pose\n",
            "MSG: geometry_msgs/Point\n",
            "MSG: geometry_msgs/Quaternion\n",
        ] {
            assert_eq!(s.matches(dep).count(), 1, "{dep} in\n{s}");
        }
        let img = super::ros2msg_schema("sensor_msgs/msg/Image").unwrap();
        assert_eq!(img.matches("MSG: ").count(), 2, "{img}");
        for (_, ty) in crate::keys::TOPICS {
            assert!(super::ros2msg_schema(ty).is_some(), "{ty}");
        }
    }
}
