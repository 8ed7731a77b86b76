//! The emulated controller itself: the kinematic UR5e, its registers and digital
//! outputs, and loho's control program stepping once per cycle.

use std::collections::HashMap;

use loho_core::kinematics::Kinematics;
use loho_core::pose::EePose;

use super::{
    Snapshot, DT, JUMP_S, PLAYING, PROTECTIVE_STOP, ROBOT_RUNNING, SAFETY_NORMAL, STOPPED,
};
use crate::ur::frames::{matrix_to_tcp, tcp_to_matrix, BaseFrame};
use crate::ur::program::{self, mode, state, ControlProgram};
use crate::ur::rtde::{field_type, Direction, Recipe, Register, TextMessage, Type, Value};

/// A text message from the controller.
fn message(text: String, level: u8) -> TextMessage {
    TextMessage {
        message: text,
        source: "Controller".into(),
        level,
    }
}

/// The emulated controller: the arm, its registers and the running program.
pub(super) struct Controller {
    /// The arm being emulated.
    kin: Kinematics,
    pub(super) time: f64,
    q: [f64; 6],
    qd: [f64; 6],
    target_q: [f64; 6],
    /// The servo target `target_q` solves (NaN while none), and when it came (s).
    target_pose: [f64; 6],
    target_at: f64,
    tcp: [f64; 6],
    tcp_speed: [f64; 6],
    pub(super) safety_status: i32,
    runtime_state: u32,
    program: Option<Running>,
    int_in: [i32; 48],
    double_in: [f64; 48],
    int_out: [i32; 48],
    /// `input_bit_register_64..127`.
    bits_in: u64,
    /// Standard (0–7), configurable (8–15) and tool (16–17) digital outputs.
    digital_out: u64,
    speed_slider: f64,
    /// Which connection writes each input.
    pub(super) owners: HashMap<String, usize>,
}

/// loho's program, running.
struct Running {
    program: ControlProgram,
    last_seq: i32,
    silent: u32,
    beat: i32,
    /// Deceleration of the stop in progress (rad/s²).
    stopping: Option<f64>,
}

impl Controller {
    /// At rest with joints `q`.
    pub(super) fn new(k: &Kinematics, q: [f64; 6]) -> Self {
        Self {
            time: 0.0,
            q,
            qd: [0.0; 6],
            target_q: q,
            target_pose: [f64::NAN; 6],
            target_at: 0.0,
            tcp: matrix_to_tcp(&k.forward(&q)),
            kin: k.clone(),
            tcp_speed: [0.0; 6],
            safety_status: SAFETY_NORMAL,
            runtime_state: STOPPED,
            program: None,
            int_in: [0; 48],
            double_in: [0.0; 48],
            int_out: [0; 48],
            bits_in: 0,
            digital_out: 0,
            speed_slider: 1.0,
            owners: HashMap::new(),
        }
    }

    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            time: self.time,
            q: self.q,
            qd: self.qd,
            tcp: self.tcp,
            safety_status: self.safety_status,
            runtime_state: self.runtime_state,
            program_state: self.int_out[program::OUT_STATE],
            suction: self.suction(),
        }
    }

    fn suction(&self) -> bool {
        self.digital_out >> (16 + program::SUCTION_OUTPUT) & 1 == 1
    }

    /// Where the simulated tool goes: the emulated TCP while it moves or servos, `None`
    /// (hold) once it rests; and the suction.
    pub(super) fn tool_target(&self, base: &BaseFrame) -> (Option<EePose>, bool) {
        let servoing =
            self.int_out[program::OUT_STATE] == state::SERVOING && self.runtime_state == PLAYING;
        let moving = self.qd.iter().any(|v| *v != 0.0);
        let tool = (servoing || moving).then(|| base.to_world(&tcp_to_matrix(&self.tcp)));
        (tool, self.suction())
    }

    /// A program sent to the secondary interface: loho's starts; anything else is
    /// refused. Returns the controller's message about it.
    pub(super) fn install(&mut self, text: &str) -> TextMessage {
        let program = match ControlProgram::parse(text) {
            Ok(p) => p,
            Err(e) => {
                return message(
                    format!("ur-emulator runs only loho's program: {e}"),
                    TextMessage::ERROR,
                )
            }
        };
        if self.safety_status != SAFETY_NORMAL {
            return message(
                "program not started: the robot is protective stopped".into(),
                TextMessage::ERROR,
            );
        }
        let tool = self.kin.tool;
        if program.tcp != [0.0, 0.0, tool, 0.0, 0.0, 0.0] {
            return message(
                format!(
                    "program not started: its TCP {:?} is not the emulated tool (0, 0, {tool})",
                    program.tcp
                ),
                TextMessage::ERROR,
            );
        }
        self.program = Some(Running {
            program,
            last_seq: self.int_in[program::IN_SEQUENCE],
            silent: 0,
            beat: 0,
            stopping: None,
        });
        self.runtime_state = PLAYING;
        message("loho: control program started".into(), TextMessage::INFO)
    }

    pub(super) fn protective_stop(&mut self, why: &str) -> TextMessage {
        self.safety_status = PROTECTIVE_STOP;
        self.runtime_state = STOPPED;
        self.program = None;
        // Brakes: the emulated arm stops within the cycle.
        self.qd = [0.0; 6];
        self.target_q = self.q;
        self.target_pose = [f64::NAN; 6];
        message(format!("protective stop: {why}"), TextMessage::ERROR)
    }

    /// One controller cycle: the program's step, then the joints.
    pub(super) fn cycle(&mut self) -> Option<TextMessage> {
        self.time += DT;
        let before = self.tcp;
        let message = self.step_program();
        self.tcp = matrix_to_tcp(&self.kin.forward(&self.q));
        for ((v, now), was) in self.tcp_speed.iter_mut().zip(self.tcp).zip(before) {
            *v = (now - was) / DT;
        }
        message
    }

    fn step_program(&mut self) -> Option<TextMessage> {
        let vmax = self.kin.max_joint_speed * self.speed_slider.clamp(0.0, 1.0);
        let Some(run) = self
            .program
            .as_mut()
            .filter(|_| self.runtime_state == PLAYING)
        else {
            self.decelerate(10.0);
            return None;
        };
        let seq = self.int_in[program::IN_SEQUENCE];
        let mode = self.int_in[program::IN_MODE];
        if seq != run.last_seq {
            run.last_seq = seq;
            run.silent = 0;
        } else {
            run.silent = run.silent.saturating_add(1);
        }
        let on = self.int_in[program::IN_SUCTION] == 1;
        let bit = 1u64 << (16 + program::SUCTION_OUTPUT);
        self.digital_out = if on {
            self.digital_out | bit
        } else {
            self.digital_out & !bit
        };
        run.beat = run.beat.wrapping_add(1);
        self.int_out[program::OUT_HEARTBEAT] = run.beat;
        if mode == mode::SERVO && run.silent <= run.program.watchdog_cycles {
            self.int_out[program::OUT_STATE] = state::SERVOING;
            run.stopping = None;
            let target: [f64; 6] = std::array::from_fn(|k| self.double_in[program::IN_TARGET + k]);
            return self.servo(&target, vmax);
        }
        let (s, decel) = match mode {
            mode::STOP => (state::STOPPED, run.program.estop_decel),
            mode::SERVO => (state::WATCHDOG, run.program.stop_decel),
            _ => (state::HOLDING, run.program.stop_decel),
        };
        self.int_out[program::OUT_STATE] = s;
        // A stop keeps the deceleration it started with (stopj blocks until standstill),
        // unless the e-stop asks for a harder one.
        let decel = run.stopping.map_or(decel, |d| d.max(decel));
        run.stopping = Some(decel);
        self.decelerate(decel);
        None
    }

    /// `servoj` toward the inverse kinematics of `target` (base frame TCP pose).
    fn servo(&mut self, target: &[f64; 6], vmax: f64) -> Option<TextMessage> {
        if !target.iter().all(|v| v.is_finite()) {
            return Some(self.protective_stop("servoj: target is not finite"));
        }
        if *target != self.target_pose {
            let (q, err) = self.kin.inverse(&tcp_to_matrix(target), &self.target_q);
            if err > 1e-3 {
                return Some(self.protective_stop(&format!(
                    "get_inverse_kin: no solution for p{target:?} ({:.0} mm off)",
                    err * 1e3
                )));
            }
            let reach = vmax.max(1e-6) * JUMP_S;
            if let Some(k) = (0..6).find(|&k| (q[k] - self.target_q[k]).abs() > reach) {
                return Some(self.protective_stop(&format!(
                    "servoj: joint {k} asked to jump {:.3} rad from its last target",
                    q[k] - self.target_q[k]
                )));
            }
            if let Some(k) = (0..6).find(|&k| q[k].abs() > 2.0 * std::f64::consts::PI) {
                return Some(self.protective_stop(&format!("joint {k} beyond its limit")));
            }
            // A new setpoint: reached over the interval the setpoints come at, as
            // servoj's interpolation spreads it, at most at the speed limit.
            let interval = (self.time - self.target_at).clamp(DT, 0.1);
            self.target_at = self.time;
            self.target_pose = *target;
            self.target_q = q;
            for ((v, goal), now) in self.qd.iter_mut().zip(q).zip(self.q) {
                *v = ((goal - now) / interval).clamp(-vmax, vmax);
            }
        }
        for ((now, v), goal) in self.q.iter_mut().zip(&mut self.qd).zip(self.target_q) {
            let step = *v * DT;
            if (goal - *now).abs() <= step.abs() {
                *now = goal;
                *v = 0.0;
            } else {
                *now += step;
            }
        }
        None
    }

    /// Joints slowing at `decel` (rad/s²), all reaching standstill together.
    fn decelerate(&mut self, decel: f64) {
        let fastest = self.qd.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if fastest == 0.0 {
            return;
        }
        let scale = ((fastest - decel * DT) / fastest).max(0.0);
        for k in 0..6 {
            self.qd[k] *= scale;
            if scale == 0.0 {
                self.qd[k] = 0.0;
            }
            self.q[k] += self.qd[k] * DT;
        }
        self.target_q = self.q;
        self.target_pose = [f64::NAN; 6];
    }

    /// Applies an input data package, each value held until the next.
    pub(super) fn apply(&mut self, recipe: &Recipe, values: &[Value]) {
        let named: HashMap<&str, Value> = recipe
            .names
            .iter()
            .map(String::as_str)
            .zip(values.iter().copied())
            .collect();
        for (name, v) in &named {
            let Some(r) = Register::parse(name).filter(|r| r.dir == Direction::Input) else {
                continue;
            };
            match r.kind {
                Type::Int32 => self.int_in[r.n] = v.as_i32().unwrap_or_default(),
                Type::Double => self.double_in[r.n] = v.as_f64().unwrap_or_default(),
                _ => {
                    let bit = 1u64 << (r.n - 64);
                    self.bits_in = if *v == Value::Bool(true) {
                        self.bits_in | bit
                    } else {
                        self.bits_in & !bit
                    };
                }
            }
        }
        let masked = |mask: &str, value: &str| match (named.get(mask), named.get(value)) {
            (Some(Value::Uint8(m)), Some(Value::Uint8(v))) => Some((*m as u64, *v as u64)),
            _ => None,
        };
        for (mask, value, shift) in [
            ("standard_digital_output_mask", "standard_digital_output", 0),
            (
                "configurable_digital_output_mask",
                "configurable_digital_output",
                8,
            ),
            ("tool_digital_output_mask", "tool_digital_output", 16),
        ] {
            if let Some((m, v)) = masked(mask, value) {
                let m = m << shift;
                self.digital_out = (self.digital_out & !m) | ((v << shift) & m);
            }
        }
        if let (Some(Value::Uint32(1)), Some(Value::Double(f))) = (
            named.get("speed_slider_mask"),
            named.get("speed_slider_fraction"),
        ) {
            if f.is_finite() {
                self.speed_slider = f.clamp(0.0, 1.0);
            }
        }
    }

    /// The value of output `name` (a name [`field_type`] knows).
    pub(super) fn output(&self, name: &str) -> Value {
        let playing = self.runtime_state == PLAYING;
        if let Some(r) = Register::parse(name) {
            return match (r.dir, r.kind) {
                (Direction::Input, Type::Int32) => Value::Int32(self.int_in[r.n]),
                (Direction::Input, Type::Double) => Value::Double(self.double_in[r.n]),
                (Direction::Input, _) => Value::Bool(self.bits_in >> (r.n - 64) & 1 == 1),
                (Direction::Output, Type::Int32) => Value::Int32(self.int_out[r.n]),
                // loho's program writes no double or bit register.
                (Direction::Output, kind) => Value::zero(kind),
            };
        }
        match name {
            "timestamp" => Value::Double(self.time),
            "actual_q" => Value::Vector6d(self.q),
            "target_q" => Value::Vector6d(self.target_q),
            "actual_qd" | "target_qd" => Value::Vector6d(self.qd),
            "actual_TCP_pose" => Value::Vector6d(self.tcp),
            "target_TCP_pose" => Value::Vector6d(matrix_to_tcp(&self.kin.forward(&self.target_q))),
            "actual_TCP_speed" | "target_TCP_speed" => Value::Vector6d(self.tcp_speed),
            "robot_mode" => Value::Int32(ROBOT_RUNNING),
            "safety_mode" | "safety_status" => Value::Int32(self.safety_status),
            "runtime_state" => Value::Uint32(self.runtime_state),
            "actual_digital_output_bits" => Value::Uint64(self.digital_out),
            "speed_scaling" | "target_speed_fraction" => Value::Double(self.speed_slider),
            // Power on, program running.
            "robot_status_bits" => Value::Uint32(1 | (playing as u32) << 1),
            // Normal mode, or protective stopped.
            "safety_status_bits" => Value::Uint32(if self.safety_status == PROTECTIVE_STOP {
                1 << 2
            } else {
                1
            }),
            "joint_mode" => Value::Vector6Int32([253; 6]),
            "tool_output_voltage" => Value::Int32(24),
            "input_bit_registers0_to_31" | "input_bit_registers32_to_63" => Value::Uint32(0),
            other => Value::zero(field_type(Direction::Output, other).unwrap_or(Type::Double)),
        }
    }
}
