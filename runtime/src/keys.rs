//! Key expressions: every topic lives under `loho/<robot>/` (DESIGN §4), so several robots
//! share one zenoh network and a ROS 2 bridge maps `/loho/arm0/state` to `loho/arm0/state`.

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
