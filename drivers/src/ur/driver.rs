//! The UR driver: a UR e-Series (or CB3) controller as an [`Arm`], over RTDE and the
//! secondary interface.
//!
//! At connect it negotiates protocol 2, reads the controller's version (500 Hz on
//! e-Series, 125 Hz on CB3), sets up one output recipe at that rate ([`OUTPUTS`]) and one
//! input recipe (loho's registers, [`program`]), starts the stream and sends loho's
//! control program to the secondary interface; it returns once the program's heartbeat
//! runs. A reader thread keeps the newest data package; the arm node's calls only read it
//! or write one small input package (a socket write with a timeout, never unbounded).
//!
//! What the controller reports becomes the state's `fault`: a robot mode other than
//! running, a safety status other than normal (a protective stop), the program not
//! playing or its heartbeat stalled, and a lost connection. Nothing restarts by itself:
//! after a protective stop, clear it on the pendant and restart the driver.

use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loho_core::msg::{ArmState, Header};
use loho_core::pose::EePose;
use loho_core::robot::Robot;

use super::frames::{tcp_to_matrix, BaseFrame};
use super::program::{self, mode, ControlProgram};
use super::rtde::{self, Recipe, Reply, Request, RtdeError, Value};
use crate::arm::{Arm, ArmError};

/// What the driver reads at the controller's rate.
pub const OUTPUTS: [&str; 10] = [
    "timestamp",
    "actual_TCP_pose",
    "actual_q",
    "actual_TCP_speed",
    "robot_mode",
    "safety_status",
    "runtime_state",
    "actual_digital_output_bits",
    "output_int_register_24",
    "output_int_register_25",
];

/// The registers it writes (see [`program`]).
pub fn inputs() -> Vec<String> {
    let mut names = vec![
        format!("input_int_register_{}", program::IN_SEQUENCE),
        format!("input_int_register_{}", program::IN_MODE),
        format!("input_int_register_{}", program::IN_SUCTION),
    ];
    names.extend((0..6).map(|k| format!("input_double_register_{}", program::IN_TARGET + k)));
    names
}

#[derive(Debug, Clone)]
pub struct UrConfig {
    /// The controller: `192.168.1.10` or a name, with the ports below.
    pub host: String,
    pub rtde_port: u16,
    pub script_port: u16,
    pub base: BaseFrame,
    pub program: ControlProgram,
    /// Connecting, the handshake, and the program's start each get this long.
    pub timeout: Duration,
    /// No data package (or no heartbeat) for this long is a lost controller.
    pub stale: Duration,
    pub joint_names: Vec<String>,
}

/// Joint decelerations of the program's stops (rad/s²): a hold, and the e-stop.
pub const STOP_DECEL: f64 = 4.0;
pub const ESTOP_DECEL: f64 = 15.0;

impl UrConfig {
    /// A controller at `host` on the standard ports, driving `robot`'s tool; the program
    /// stops the arm after `watchdog` without a new setpoint.
    pub fn new(host: &str, robot: &Robot, watchdog: Duration) -> Self {
        let k = &robot.kinematics;
        Self {
            host: host.into(),
            rtde_port: rtde::PORT,
            script_port: super::SECONDARY_PORT,
            base: BaseFrame::from(k),
            program: ControlProgram {
                // 500 cycles per second on e-Series.
                watchdog_cycles: (watchdog.as_secs_f64() * 500.0).ceil() as u32,
                stop_decel: STOP_DECEL,
                estop_decel: ESTOP_DECEL,
                tcp: [0.0, 0.0, k.tool, 0.0, 0.0, 0.0],
            },
            timeout: Duration::from_secs(3),
            stale: Duration::from_millis(100),
            joint_names: k.joint_names.clone(),
        }
    }
}

/// One output data package, by field.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub timestamp: f64,
    pub tcp: [f64; 6],
    pub q: [f64; 6],
    pub tcp_speed: [f64; 6],
    pub robot_mode: i32,
    pub safety_status: i32,
    pub runtime_state: u32,
    pub digital_out: u64,
    pub heartbeat: i32,
    pub program_state: i32,
}

impl Measured {
    /// Decodes one package of the [`OUTPUTS`] recipe.
    pub fn from_values(v: &[Value]) -> Result<Self, RtdeError> {
        let bad =
            |i: usize| RtdeError::Refused(format!("output {} has the wrong type", OUTPUTS[i]));
        let f = |i: usize| v.get(i).and_then(Value::as_f64).ok_or_else(|| bad(i));
        let v6 = |i: usize| v.get(i).and_then(Value::as_vec6).ok_or_else(|| bad(i));
        let i32_ = |i: usize| v.get(i).and_then(Value::as_i32).ok_or_else(|| bad(i));
        Ok(Self {
            timestamp: f(0)?,
            tcp: v6(1)?,
            q: v6(2)?,
            tcp_speed: v6(3)?,
            robot_mode: i32_(4)?,
            safety_status: i32_(5)?,
            runtime_state: v.get(6).and_then(Value::as_u32).ok_or_else(|| bad(6))?,
            digital_out: v.get(7).and_then(Value::as_u64).ok_or_else(|| bad(7))?,
            heartbeat: i32_(8)?,
            program_state: i32_(9)?,
        })
    }

    /// Why the arm cannot move now, or `None`.
    pub fn fault(&self) -> Option<String> {
        // Index = the mode's number (NO_CONTROLLER, -1, shows as its number).
        const ROBOT_MODES: [&str; 9] = [
            "DISCONNECTED",
            "CONFIRM_SAFETY",
            "BOOTING",
            "POWER_OFF",
            "POWER_ON",
            "IDLE",
            "BACKDRIVE",
            "RUNNING",
            "UPDATING_FIRMWARE",
        ];
        const SAFETY: [&str; 14] = [
            "",
            "NORMAL",
            "REDUCED",
            "PROTECTIVE_STOP",
            "RECOVERY",
            "SAFEGUARD_STOP",
            "SYSTEM_EMERGENCY_STOP",
            "ROBOT_EMERGENCY_STOP",
            "VIOLATION",
            "FAULT",
            "VALIDATE_JOINT_ID",
            "UNDEFINED_SAFETY_MODE",
            "AUTOMATIC_MODE_SAFEGUARD_STOP",
            "SYSTEM_THREE_POSITION_ENABLING_STOP",
        ];
        let name = |names: &[&'static str], i: i32| {
            usize::try_from(i)
                .ok()
                .and_then(|i| names.get(i).copied())
                .filter(|n| !n.is_empty())
                .map_or_else(|| i.to_string(), str::to_string)
        };
        // NORMAL and REDUCED let the arm move.
        if !(1..=2).contains(&self.safety_status) {
            return Some(format!(
                "safety status {}",
                name(&SAFETY, self.safety_status)
            ));
        }
        if self.robot_mode != 7 {
            return Some(format!(
                "robot mode {}",
                name(&ROBOT_MODES, self.robot_mode)
            ));
        }
        if self.runtime_state != 2 {
            return Some(format!(
                "the control program is not running (runtime state {})",
                self.runtime_state
            ));
        }
        None
    }

    pub fn suction(&self) -> bool {
        self.digital_out >> (16 + program::SUCTION_OUTPUT) & 1 == 1
    }
}

/// What the reader thread keeps.
#[derive(Default)]
struct Latest {
    measured: Option<Measured>,
    /// When the newest package came.
    at: Option<Instant>,
    /// When the program's heartbeat last changed.
    beat_at: Option<Instant>,
    /// The connection failed.
    failed: Option<String>,
    /// The controller's last error message (why a program did not start).
    last_error: Option<String>,
}

pub struct UrArm {
    cfg: UrConfig,
    writer: TcpStream,
    input: Recipe,
    latest: Arc<Mutex<Latest>>,
    reader: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    seq: i32,
    mode: i32,
    suction: bool,
    target: [f64; 6],
}

fn addr(host: &str, port: u16) -> Result<SocketAddr, ArmError> {
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ArmError::Disconnected(format!("cannot resolve {host}:{port}")))
}

fn io(what: &str) -> impl Fn(RtdeError) -> ArmError + '_ {
    move |e| match e {
        RtdeError::Refused(why) => ArmError::Refused(format!("{what}: {why}")),
        e => ArmError::Disconnected(format!("{what}: {e}")),
    }
}

impl UrArm {
    /// Connects, negotiates the recipes, sends the control program and waits until it
    /// runs.
    pub fn connect(cfg: UrConfig) -> Result<Self, ArmError> {
        let at = addr(&cfg.host, cfg.rtde_port)?;
        let mut stream = TcpStream::connect_timeout(&at, cfg.timeout).map_err(|e| {
            ArmError::Disconnected(format!(
                "no RTDE at {at}: {e} (is the controller on and reachable?)"
            ))
        })?;
        let setup = |s: &TcpStream| -> std::io::Result<()> {
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(cfg.timeout))?;
            s.set_write_timeout(Some(Duration::from_millis(20)))
        };
        setup(&stream).map_err(|e| ArmError::Disconnected(e.to_string()))?;
        let hs = io("RTDE handshake");
        match ask(
            &mut stream,
            &Request::ProtocolVersion(rtde::PROTOCOL_VERSION),
        )
        .map_err(&hs)?
        {
            Reply::ProtocolVersion { accepted: true } => {}
            _ => {
                return Err(ArmError::Refused(
                    "the controller does not speak RTDE protocol 2 (PolyScope 3.3 or later \
                     needed)"
                        .into(),
                ))
            }
        }
        let Reply::ControllerVersion(version) =
            ask(&mut stream, &Request::ControllerVersion).map_err(&hs)?
        else {
            return Err(hs(RtdeError::Refused("no controller version".into())));
        };
        let names = OUTPUTS.map(str::to_string).to_vec();
        let outputs = match ask(
            &mut stream,
            &Request::SetupOutputs {
                frequency: version.rate_hz(),
                names,
            },
        )
        .map_err(&hs)?
        {
            Reply::SetupOutputs { recipe, types } => {
                Recipe::accepted(recipe, &OUTPUTS, &types).map_err(io("output recipe"))?
            }
            _ => return Err(hs(RtdeError::Refused("no output recipe".into()))),
        };
        let input_names = inputs();
        let input = match ask(
            &mut stream,
            &Request::SetupInputs {
                names: input_names.clone(),
            },
        )
        .map_err(&hs)?
        {
            Reply::SetupInputs { recipe, types } => {
                let refs: Vec<&str> = input_names.iter().map(String::as_str).collect();
                Recipe::accepted(recipe, &refs, &types).map_err(io(
                    "input recipe (another RTDE client, e.g. ur_rtde, may own registers 24-26)",
                ))?
            }
            _ => return Err(hs(RtdeError::Refused("no input recipe".into()))),
        };
        match ask(&mut stream, &Request::Start).map_err(&hs)? {
            Reply::Start { accepted: true } => {}
            _ => {
                return Err(ArmError::Refused(
                    "the controller refused to start RTDE".into(),
                ))
            }
        }
        tracing::info!(
            "ur: RTDE at {at}, controller {}.{}.{}, {} Hz",
            version.major,
            version.minor,
            version.bugfix,
            version.rate_hz()
        );
        let writer = stream
            .try_clone()
            .map_err(|e| ArmError::Disconnected(e.to_string()))?;
        let latest = Arc::new(Mutex::new(Latest::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (latest.clone(), stop.clone());
        let reader = std::thread::Builder::new()
            .name("ur-rtde".into())
            .spawn(move || read_loop(stream, outputs, l, s))
            .map_err(|e| ArmError::Disconnected(e.to_string()))?;
        let mut arm = Self {
            cfg,
            writer,
            input,
            latest,
            reader: Some(reader),
            stop,
            seq: 0,
            mode: mode::HOLD,
            suction: false,
            target: [0.0; 6],
        };
        // Hold where the tool is before the program reads the registers.
        let first = arm.wait(|_| true, "no data package from the controller")?;
        arm.target = first.tcp;
        arm.suction = first.suction();
        arm.write()?;
        arm.send_program()?;
        let t0 = Instant::now();
        arm.wait(
            |m| m.runtime_state == 2 && m.heartbeat != first.heartbeat,
            "the control program did not start",
        )?;
        tracing::info!(
            "ur: control program running after {:.0} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        Ok(arm)
    }

    fn send_program(&self) -> Result<(), ArmError> {
        let at = addr(&self.cfg.host, self.cfg.script_port)?;
        let fail = |e: std::io::Error| {
            ArmError::Disconnected(format!("sending the control program to {at}: {e}"))
        };
        let mut s = TcpStream::connect_timeout(&at, self.cfg.timeout).map_err(fail)?;
        std::io::Write::write_all(&mut s, self.cfg.program.script().as_bytes()).map_err(fail)?;
        let _ = s.shutdown(Shutdown::Write);
        Ok(())
    }

    /// The newest package once `ok` holds for it, or an error after the timeout naming
    /// the controller's last complaint.
    fn wait(&self, ok: impl Fn(&Measured) -> bool, what: &str) -> Result<Measured, ArmError> {
        let t0 = Instant::now();
        loop {
            {
                let l = self.latest.lock().unwrap();
                if let Some(why) = &l.failed {
                    return Err(ArmError::Disconnected(why.clone()));
                }
                if let Some(m) = l.measured.as_ref().filter(|m| ok(m)) {
                    return Ok(m.clone());
                }
                if t0.elapsed() > self.cfg.timeout {
                    let why = l.last_error.clone().unwrap_or_else(|| "no message".into());
                    return Err(ArmError::Refused(format!(
                        "{what} within {:?} (controller: {why})",
                        self.cfg.timeout
                    )));
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Writes the registers as they stand.
    fn write(&mut self) -> Result<(), ArmError> {
        let mut values = vec![
            Value::Int32(self.seq),
            Value::Int32(self.mode),
            Value::Int32(self.suction as i32),
        ];
        values.extend(self.target.iter().map(|v| Value::Double(*v)));
        let p = self.input.package(&values).map_err(io("input package"))?;
        rtde::write_packet(
            &mut self.writer,
            rtde::command::DATA_PACKAGE,
            &Request::Data(p).payload(),
        )
        .map_err(io("RTDE write"))
    }

    /// The newest package, or why there is none fresh enough.
    fn measured(&self) -> Result<Measured, ArmError> {
        let l = self.latest.lock().unwrap();
        if let Some(why) = &l.failed {
            return Err(ArmError::Disconnected(why.clone()));
        }
        let (Some(m), Some(at)) = (&l.measured, l.at) else {
            return Err(ArmError::Disconnected("no data from the controller".into()));
        };
        let silent = at.elapsed();
        if silent > self.cfg.stale {
            return Err(ArmError::Disconnected(format!(
                "no data from the controller for {} ms",
                silent.as_millis()
            )));
        }
        Ok(m.clone())
    }

    /// Why the arm cannot move, from the newest package.
    fn fault(&self, m: &Measured) -> Option<String> {
        m.fault().or_else(|| {
            let beat_at = self.latest.lock().unwrap().beat_at?;
            let silent = beat_at.elapsed();
            (silent > self.cfg.stale).then(|| {
                format!(
                    "the control program's heartbeat stopped {} ms ago",
                    silent.as_millis()
                )
            })
        })
    }
}

/// Sends one request and reads its reply (text messages on the way are logged).
fn ask(s: &mut TcpStream, r: &Request) -> Result<Reply, RtdeError> {
    rtde::write_packet(s, r.command(), &r.payload())?;
    loop {
        let (command, payload) = rtde::read_packet(s)?;
        match Reply::decode(command, &payload)? {
            Reply::Text(m) => tracing::info!("ur: controller: {}", m.message),
            reply if command == r.command() => return Ok(reply),
            _ => {
                return Err(RtdeError::Unexpected {
                    expected: r.command(),
                    got: command,
                })
            }
        }
    }
}

fn read_loop(mut s: TcpStream, recipe: Recipe, latest: Arc<Mutex<Latest>>, stop: Arc<AtomicBool>) {
    let failed = loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let packet = rtde::read_packet(&mut s)
            .and_then(|(c, p)| Reply::decode(c, &p))
            .and_then(|reply| match reply {
                Reply::Data(p) => Ok(Some(Measured::from_values(&recipe.values(&p)?)?)),
                Reply::Text(m) if m.level <= rtde::TextMessage::ERROR => {
                    tracing::warn!("ur: controller: {}", m.message);
                    latest.lock().unwrap().last_error = Some(m.message);
                    Ok(None)
                }
                Reply::Text(m) => {
                    tracing::info!("ur: controller: {}", m.message);
                    Ok(None)
                }
                other => Err(RtdeError::Unexpected {
                    expected: rtde::command::DATA_PACKAGE,
                    got: other.command(),
                }),
            });
        match packet {
            Ok(Some(m)) => {
                let mut l = latest.lock().unwrap();
                let now = Instant::now();
                if l.measured
                    .as_ref()
                    .is_none_or(|o| o.heartbeat != m.heartbeat)
                {
                    l.beat_at = Some(now);
                }
                l.measured = Some(m);
                l.at = Some(now);
            }
            Ok(None) => {}
            // The driver closed the socket itself.
            Err(_) if stop.load(Ordering::Relaxed) => return,
            Err(e) => break e.to_string(),
        }
    };
    tracing::error!("ur: {failed}");
    latest.lock().unwrap().failed = Some(failed);
}

impl Arm for UrArm {
    fn state(&mut self) -> Result<ArmState, ArmError> {
        let m = self.measured()?;
        let pose = self.cfg.base.to_world(&tcp_to_matrix(&m.tcp));
        Ok(ArmState {
            header: Header::new(m.timestamp, "world"),
            ee_pose: pose.to_pose(),
            gripper: m.suction() as u8 as f64,
            // A suction cup without a vacuum sensor cannot tell.
            holding: false,
            joint_names: self.cfg.joint_names.clone(),
            joint_positions: m.q.to_vec(),
            fault: self.fault(&m).unwrap_or_default(),
        })
    }

    fn servo(&mut self, target: EePose, _stamp: f64) -> Result<(), ArmError> {
        let m = self.measured()?;
        if let Some(why) = self.fault(&m) {
            return Err(ArmError::Refused(why));
        }
        self.seq = self.seq.wrapping_add(1);
        self.mode = mode::SERVO;
        self.target = self.cfg.base.to_tcp(&target);
        self.write()
    }

    fn suction(&mut self, on: bool) -> Result<(), ArmError> {
        if on == self.suction {
            return Ok(());
        }
        self.suction = on;
        self.write()
    }

    fn hold(&mut self) -> Result<(), ArmError> {
        self.mode = mode::HOLD;
        self.write()
    }

    fn estop(&mut self) -> Result<(), ArmError> {
        self.mode = mode::STOP;
        self.write()
    }
}

impl Drop for UrArm {
    fn drop(&mut self) {
        // The program holds the arm; its watchdog would stop it anyway.
        let _ = self.hold();
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.writer.shutdown(Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}
