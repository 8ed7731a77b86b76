//! Key expressions: every topic lives under `loho/<robot>/` (docs/runtime.md), so several robots
//! share one zenoh network and a ROS 2 bridge maps `/loho/arm0/state` to `loho/arm0/state`;
//! and the catalogue of topics with their message types ([`TOPICS`], [`topic_type`]).

use loho_core::msg::{
    ActionChunk, ArmState, BoolMsg, CameraInfo, Clock, DiagnosticArray, EeCommand, EpisodeEvent,
    ExecStatus, HeightmapInfo, Image, Message, StringMsg,
};

pub const COLOR: &str = "camera/top/color";
pub const DEPTH: &str = "camera/top/depth";
pub const INFO: &str = "camera/top/info";
pub const STATE: &str = "state";
pub const INSTRUCTION: &str = "instruction";
pub const SUBTASK: &str = "policy/subtask";
pub const ACTION: &str = "policy/action";
pub const INFER: &str = "policy/infer";
pub const CMD_EE: &str = "cmd/ee";
pub const EXEC_STATUS: &str = "exec/status";
pub const EPISODE: &str = "episode";
pub const ESTOP: &str = "estop";
pub const DIAGNOSTICS: &str = "diagnostics";
pub const CLOCK: &str = "clock";

/// Every topic of loho with its message type.
pub const TOPICS: &[(&str, &str)] = &[
    (COLOR, Image::TYPE_NAME),
    (DEPTH, Image::TYPE_NAME),
    (INFO, HeightmapInfo::TYPE_NAME),
    (STATE, ArmState::TYPE_NAME),
    (INSTRUCTION, StringMsg::TYPE_NAME),
    (SUBTASK, StringMsg::TYPE_NAME),
    (ACTION, ActionChunk::TYPE_NAME),
    (CMD_EE, EeCommand::TYPE_NAME),
    (EXEC_STATUS, ExecStatus::TYPE_NAME),
    (EPISODE, EpisodeEvent::TYPE_NAME),
    (ESTOP, BoolMsg::TYPE_NAME),
    (DIAGNOSTICS, DiagnosticArray::TYPE_NAME),
    (CLOCK, Clock::TYPE_NAME),
];

/// The type of a topic: one of [`TOPICS`], or a camera's (`camera/<name>/color`, `…/depth`:
/// `sensor_msgs/Image`; `camera/<name>/info`: `sensor_msgs/CameraInfo`).
pub fn topic_type(topic: &str) -> Option<&'static str> {
    if let Some((_, ty)) = TOPICS.iter().find(|(t, _)| *t == topic) {
        return Some(ty);
    }
    let rest = topic.strip_prefix("camera/")?;
    match rest.split_once('/')? {
        (_, "color" | "depth") => Some(Image::TYPE_NAME),
        (_, "info") => Some(CameraInfo::TYPE_NAME),
        _ => None,
    }
}

/// The robot id used when none is configured.
pub const DEFAULT_ROBOT: &str = "arm0";

/// `loho/<robot>/<topic>`.
pub fn key(robot: &str, topic: &str) -> String {
    format!("loho/{robot}/{topic}")
}

/// The liveliness token a node declares: `loho/<robot>/@alive/<node>`.
pub fn alive(robot: &str, node: &str) -> String {
    format!("loho/{robot}/@alive/{node}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_under_the_robot() {
        assert_eq!(
            super::key("arm0", super::COLOR),
            "loho/arm0/camera/top/color"
        );
        assert_eq!(super::alive("arm1", "sim"), "loho/arm1/@alive/sim");
    }
}
