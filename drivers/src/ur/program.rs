//! loho's URScript control program and its register map: the contract between the UR
//! driver, which writes the registers over RTDE, and the program running on the
//! controller, which servos the tool to them. The driver sends [`ControlProgram::script`]
//! at start; the emulator reads the same text back with [`ControlProgram::parse`] and
//! runs its semantics, so both ends share one definition.
//!
//! Each cycle of the controller (2 ms on e-Series) the program reads the sequence, mode
//! and suction registers; in servo mode it moves the joints toward the inverse
//! kinematics of the target pose (`servoj`); when the sequence has not advanced for
//! [`ControlProgram::watchdog_cycles`] cycles it stops the arm by itself, so the arm stops
//! even if loho dies. Registers are in the external-clients range 24..47 (0..23 belong to
//! fieldbus and PLC).

use thiserror::Error;

/// `input_int_register_N`: advances with every setpoint (the program's watchdog).
pub const IN_SEQUENCE: usize = 24;
/// `input_int_register_N`: one of [`mode`].
pub const IN_MODE: usize = 25;
/// `input_int_register_N`: 1 suction on, 0 off (tool digital output 0).
pub const IN_SUCTION: usize = 26;
/// `input_double_register_N..N+5`: the target TCP pose in the base frame (x, y, z, rx,
/// ry, rz; m and rotation vector).
pub const IN_TARGET: usize = 24;
/// `output_int_register_N`: the program's cycle count (it is alive).
pub const OUT_HEARTBEAT: usize = 24;
/// `output_int_register_N`: one of [`state`].
pub const OUT_STATE: usize = 25;
/// The tool digital output the suction valve hangs on; read back in
/// `actual_digital_output_bits` at bit 16 + this.
pub const SUCTION_OUTPUT: u32 = 0;

/// What the driver asks (`input_int_register_25`).
pub mod mode {
    /// Stop (if moving) and stay.
    pub const HOLD: i32 = 0;
    /// Follow the target register.
    pub const SERVO: i32 = 1;
    /// The e-stop: stop at the e-stop deceleration and stay.
    pub const STOP: i32 = 2;
}

/// What the program does (`output_int_register_25`).
pub mod state {
    pub const HOLDING: i32 = 0;
    pub const SERVOING: i32 = 1;
    /// The sequence stopped advancing in servo mode: stopped by the program's watchdog.
    pub const WATCHDOG: i32 = 2;
    pub const STOPPED: i32 = 3;
}

/// The program's parameters, written into its text.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlProgram {
    /// Cycles without a new sequence number before the program stops the arm.
    pub watchdog_cycles: u32,
    /// Joint deceleration of a hold and of the watchdog's stop (rad/s²).
    pub stop_decel: f64,
    /// Joint deceleration of the e-stop (rad/s²).
    pub estop_decel: f64,
    /// The TCP (suction tip) relative to the flange: x, y, z, rx, ry, rz.
    pub tcp: [f64; 6],
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ProgramError {
    #[error("not loho's control program: {0}")]
    Foreign(String),
    #[error("loho's control program without a valid {0}")]
    Missing(&'static str),
}

/// The program's name: its first line is `def NAME():`.
pub const NAME: &str = "loho_control";

impl ControlProgram {
    /// The URScript text. Lines are indented under `def`, and the last line is `end` in
    /// the first column, as the script manual requires of a program sent to a socket.
    pub fn script(&self) -> String {
        let [x, y, z, rx, ry, rz] = self.tcp;
        let reg = |n: usize| format!("read_input_float_register({n})");
        let target = (0..6).map(|k| reg(IN_TARGET + k)).collect::<Vec<_>>();
        format!(
            "def {NAME}():
  # loho's control program (written by `loho driver ur`; see docs/deploy.md).
  LOHO_WATCHDOG_CYCLES = {watchdog}
  LOHO_STOP_DECEL = {stop:?}
  LOHO_ESTOP_DECEL = {estop_decel:?}
  set_tcp(p[{x:?}, {y:?}, {z:?}, {rx:?}, {ry:?}, {rz:?}])
  textmsg(\"loho: control program started\")
  last = read_input_integer_register({seq})
  silent = 0
  beat = 0
  moving = False
  while True:
    seq = read_input_integer_register({seq})
    mode = read_input_integer_register({mode})
    if seq != last:
      last = seq
      silent = 0
    else:
      silent = silent + 1
    end
    set_tool_digital_out({out}, read_input_integer_register({suction}) == 1)
    beat = beat + 1
    write_output_integer_register({beat}, beat)
    if mode == {servo} and silent <= LOHO_WATCHDOG_CYCLES:
      write_output_integer_register({state}, {servoing})
      target = p[{target}]
      q = get_inverse_kin(target, qnear=get_actual_joint_positions())
      servoj(q, t=0.002, lookahead_time=0.1, gain=300)
      moving = True
    else:
      if mode == {estop}:
        write_output_integer_register({state}, {stopped})
      elif mode == {servo}:
        write_output_integer_register({state}, {watchdog_state})
      else:
        write_output_integer_register({state}, {holding})
      end
      if moving:
        if mode == {estop}:
          stopj(LOHO_ESTOP_DECEL)
        else:
          stopj(LOHO_STOP_DECEL)
        end
        moving = False
      end
      sync()
    end
  end
end
",
            watchdog = self.watchdog_cycles,
            stop = self.stop_decel,
            estop_decel = self.estop_decel,
            seq = IN_SEQUENCE,
            mode = IN_MODE,
            suction = IN_SUCTION,
            out = SUCTION_OUTPUT,
            beat = OUT_HEARTBEAT,
            state = OUT_STATE,
            target = target.join(", "),
            servo = mode::SERVO,
            estop = mode::STOP,
            servoing = state::SERVOING,
            stopped = state::STOPPED,
            watchdog_state = state::WATCHDOG,
            holding = state::HOLDING,
        )
    }

    /// The parameters of a program text, if it is loho's (what the emulator runs).
    pub fn parse(text: &str) -> Result<ControlProgram, ProgramError> {
        let first = text.lines().next().unwrap_or_default();
        if first.trim_end() != format!("def {NAME}():") {
            return Err(ProgramError::Foreign(format!("first line {first:?}")));
        }
        if text.lines().last().map(str::trim_end) != Some("end") {
            return Err(ProgramError::Foreign("no `end` in the last line".into()));
        }
        let value = |key: &'static str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(key)?.trim().strip_prefix('='))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or(ProgramError::Missing(key))
        };
        let tcp = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("set_tcp(p[")?.strip_suffix("])"))
            .and_then(|v| {
                let v: Vec<f64> = v
                    .split(',')
                    .map(|x| x.trim().parse().ok())
                    .collect::<Option<_>>()?;
                <[f64; 6]>::try_from(v).ok()
            })
            .ok_or(ProgramError::Missing("set_tcp"))?;
        Ok(ControlProgram {
            watchdog_cycles: value("LOHO_WATCHDOG_CYCLES")? as u32,
            stop_decel: value("LOHO_STOP_DECEL")?,
            estop_decel: value("LOHO_ESTOP_DECEL")?,
            tcp,
        })
    }
}
