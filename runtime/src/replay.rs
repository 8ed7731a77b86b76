//! A recording published back onto a bus with its timing: the frames, state and
//! instruction of a recorded episode, so a policy (or any node) can run against it again.
//!
//! By default the topics the nodes under test write ([`NOT_REPLAYED_BY_DEFAULT`]) stay
//! out: a replayed `cmd/ee` or chunk could move an arm listening on the bus, and a replayed
//! e-stop release could lift a live e-stop. A file cut short by a kill replays up to the cut.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::bus::Bus;
use crate::keys;
use crate::record::{check_topics, RecordError};

/// What the policy and the controller write; replayed only when named.
pub const NOT_REPLAYED_BY_DEFAULT: &[&str] = &[
    keys::SUBTASK,
    keys::ACTION,
    keys::CMD_EE,
    keys::EXEC_STATUS,
    keys::ESTOP,
];

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Only these topics; empty: every recorded topic but [`NOT_REPLAYED_BY_DEFAULT`].
    pub topics: Vec<String>,
    /// Playback speed (2.0: twice as fast).
    pub speed: f64,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            topics: vec![],
            speed: 1.0,
        }
    }
}

/// What a replay published.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    /// Messages per topic.
    pub messages: BTreeMap<String, u64>,
    /// Recorded time from the first message published to the last.
    pub span: Duration,
    /// Whether the file ended early (no footer: its recorder was killed).
    pub cut_short: bool,
}

/// The topic of an MCAP channel `/loho/<robot>/<topic>`, whatever the robot.
pub fn topic_of(channel: &str) -> Option<&str> {
    let rest = channel.strip_prefix("/loho/")?;
    Some(rest.split_once('/')?.1)
}

/// Publishes `path` onto `bus`'s robot, each message when its log time comes (scaled by
/// `speed`), until the file ends or `stop` is set; `progress` is called with the
/// recorded seconds done and in all.
pub fn replay(
    bus: &Bus,
    path: &Path,
    opts: &ReplayOptions,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(f64, f64),
) -> Result<ReplaySummary, RecordError> {
    check_topics(&opts.topics)?;
    if !(opts.speed.is_finite() && opts.speed > 0.0) {
        return Err(RecordError::Speed(opts.speed));
    }
    let mc = |source| RecordError::Mcap {
        path: PathBuf::from(path),
        source,
    };
    let bytes = std::fs::read(path).map_err(|source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let wanted = |t: &str| match opts.topics.is_empty() {
        true => !NOT_REPLAYED_BY_DEFAULT.contains(&t),
        false => opts.topics.iter().any(|w| w == t),
    };
    let options = mcap::read::Options::IgnoreEndMagic.into();
    // A first pass for the span (the progress bar's length) and whether the file is whole.
    // A whole file ends with the magic after its footer.
    let (mut first, mut last, mut cut_short) = (u64::MAX, 0, !bytes.ends_with(mcap::MAGIC));
    for m in mcap::MessageStream::new_with_options(&bytes, options).map_err(mc)? {
        match m {
            Ok(m) if topic_of(&m.channel.topic).is_some_and(wanted) => {
                first = first.min(m.log_time);
                last = last.max(m.log_time);
            }
            Ok(_) => {}
            Err(_) => {
                cut_short = true;
                break;
            }
        }
    }
    let mut summary = ReplaySummary {
        cut_short,
        ..Default::default()
    };
    if first > last {
        return Ok(summary);
    }
    let total = (last - first) as f64 * 1e-9;
    let start = Instant::now();
    for m in mcap::MessageStream::new_with_options(&bytes, options)
        .map_err(mc)?
        .map_while(Result::ok)
    {
        let Some(topic) = topic_of(&m.channel.topic).filter(|t| wanted(t)) else {
            continue;
        };
        let at = m.log_time.saturating_sub(first) as f64 * 1e-9;
        let due = start + Duration::from_secs_f64(at / opts.speed);
        while Instant::now() < due {
            if stop.load(Ordering::Relaxed) {
                return Ok(summary);
            }
            std::thread::sleep(
                due.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
        }
        bus.put_bytes(topic, m.data.into_owned())?;
        *summary.messages.entry(topic.to_string()).or_default() += 1;
        summary.span = Duration::from_secs_f64(at);
        progress(at, total);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_channel_names_its_topic_whatever_the_robot() {
        assert_eq!(
            super::topic_of("/loho/arm0/camera/top/color"),
            Some("camera/top/color")
        );
        assert_eq!(super::topic_of("/loho/left/cmd/ee"), Some("cmd/ee"));
        assert_eq!(super::topic_of("/tf"), None);
        assert_eq!(super::topic_of("/loho/arm0"), None);
    }
}
