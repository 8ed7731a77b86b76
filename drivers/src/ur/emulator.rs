//! A UR e-Series controller as loho's UR driver (and any RTDE client) sees it: RTDE on its
//! port, byte for byte as [`rtde`] defines it, the secondary interface taking a URScript
//! program, and a kinematic UR5e running loho's control program ([`program`]) at 500 Hz.
//!
//! What it emulates: version negotiation (protocol 2 only), controller version 5.x,
//! output and input recipes with the real names and types (`NOT_FOUND` for unknown
//! names, `IN_USE` for an input another connection writes), start/pause, data packages at
//! the requested rate (at most 500 Hz) with a rising `timestamp`, inputs held at their
//! last value, text messages; the semantics of loho's control program on a UR5e whose
//! joints follow the inverse kinematics of the robot file, each setpoint reached over the
//! interval setpoints come at (as `servoj` interpolates), at most at the joint speed
//! limit; a
//! **protective stop** (reported in `safety_status`/`safety_mode`, the program stopped)
//! on a setpoint the joints cannot reach in [`JUMP_S`] or outside the joint limits; and,
//! when backed by a simulator's stage, the simulated tool following the emulated one.
//!
//! What it does not: any URScript but loho's program (another program is refused with a
//! text message), the secondary interface's 10 Hz state messages, the primary and
//! real-time interfaces, the dashboard server, dynamics (joint accelerations are not
//! limited while servoing, torques and currents read zero), `servoj`'s lookahead filter,
//! safety planes and tool limits, and every output not listed in [`Controller::output`]
//! (it reads zero).

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loho_runtime::trajectory::EePose;
use loho_sim::arm::SharedStage;
use loho_sim::ur5e;

use super::frames::{matrix_to_tcp, tcp_to_matrix, BaseFrame};
use super::program::{self, mode, state, ControlProgram};
use super::rtde::{
    self, field_type, Direction, Recipe, Reply, Request, RtdeError, TextMessage, Type, Value,
    Version,
};

/// The controller's cycle (e-Series: 500 Hz).
pub const DT: f64 = 0.002;
/// A servo target farther from the previous one than the joints go in this time at their
/// speed limit is an impossible jump: a protective stop.
pub const JUMP_S: f64 = 0.1;
/// `robot_mode` RUNNING, `runtime_state` STOPPED/PLAYING, `safety_status` NORMAL and
/// PROTECTIVE_STOP (RTDE guide).
pub const ROBOT_RUNNING: i32 = 7;
pub const STOPPED: u32 = 1;
pub const PLAYING: u32 = 2;
pub const SAFETY_NORMAL: i32 = 1;
pub const PROTECTIVE_STOP: i32 = 3;
/// The version the emulator answers: e-Series (so clients pick 500 Hz).
pub const VERSION: Version = Version {
    major: 5,
    minor: 21,
    bugfix: 0,
    build: 0,
};

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub listen: IpAddr,
    /// RTDE port (30004 on a controller; 0 picks a free one).
    pub rtde_port: u16,
    /// Secondary interface port (30002 on a controller; 0 picks a free one).
    pub script_port: u16,
    /// Where the robot's base frame sits in the simulator's world (a backed emulator).
    pub base: BaseFrame,
    /// Joint speed limit (rad/s).
    pub max_joint_speed: f64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        let k = ur5e::params();
        Self {
            listen: IpAddr::from([127, 0, 0, 1]),
            rtde_port: rtde::PORT,
            script_port: super::SECONDARY_PORT,
            base: BaseFrame::from(k),
            max_joint_speed: k.max_joint_speed,
        }
    }
}

/// What the emulated arm does now (for tests and the console).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub time: f64,
    pub q: [f64; 6],
    pub qd: [f64; 6],
    /// The TCP in the base frame (x, y, z, rx, ry, rz).
    pub tcp: [f64; 6],
    pub safety_status: i32,
    pub runtime_state: u32,
    /// The control program's state register ([`program::state`]).
    pub program_state: i32,
    pub suction: bool,
}

impl Snapshot {
    /// Whether no joint moves.
    pub fn at_rest(&self) -> bool {
        self.qd.iter().all(|v| *v == 0.0)
    }
}

/// A running emulator; dropping it stops it and closes every connection.
pub struct Emulator {
    shared: Arc<Shared>,
    rtde: SocketAddr,
    script: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    stop: AtomicBool,
    ctl: Mutex<Controller>,
    /// Every RTDE connection, by id.
    sessions: Mutex<HashMap<usize, Session>>,
    next_session: AtomicUsize,
    cfg: EmulatorConfig,
    stage: Option<SharedStage>,
}

/// One RTDE connection's writing end and what it negotiated.
struct Session {
    writer: TcpStream,
    outputs: Option<(Recipe, f64)>,
    inputs: HashMap<u8, Recipe>,
    started: bool,
    /// The controller time of its next data package.
    due: f64,
    next_recipe: u8,
}

impl Emulator {
    /// Listens on the configured ports and starts the 500 Hz loop. With `stage`, the
    /// simulated tool follows the emulated one and its suction.
    pub fn start(cfg: EmulatorConfig, stage: Option<SharedStage>) -> std::io::Result<Self> {
        let rtde_listener = TcpListener::bind((cfg.listen, cfg.rtde_port))?;
        let script_listener = TcpListener::bind((cfg.listen, cfg.script_port))?;
        // Start where the simulated tool is, or above the table's centre, pointing down.
        let tip = stage
            .as_ref()
            .map_or(loho_sim::world::HOME, |s| s.lock().env.world().tip());
        let ctl = Controller::new(ur5e::inverse(&cfg.base.tcp_matrix(&tip), &ur5e::home()).0);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            ctl: Mutex::new(ctl),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicUsize::new(1),
            cfg,
            stage,
        });
        let rtde = rtde_listener.local_addr()?;
        let script = script_listener.local_addr()?;
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(spawn("ur-emulator", move || s.control_loop())?);
        let s = shared.clone();
        threads.push(spawn("ur-rtde-accept", move || {
            s.accept(rtde_listener, |s, stream| s.rtde_session(stream))
        })?);
        let s = shared.clone();
        threads.push(spawn("ur-script-accept", move || {
            s.accept(script_listener, |s, stream| s.script_session(stream))
        })?);
        tracing::info!("ur-emulator: RTDE on {rtde}, secondary interface on {script}");
        Ok(Self {
            shared,
            rtde,
            script,
            threads,
        })
    }

    pub fn rtde_addr(&self) -> SocketAddr {
        self.rtde
    }

    pub fn script_addr(&self) -> SocketAddr {
        self.script
    }

    pub fn snapshot(&self) -> Snapshot {
        self.shared.lock().snapshot()
    }

    /// Raises a protective stop, as the arm hitting something would.
    pub fn protective_stop(&self, why: &str) {
        let msg = self.shared.lock().protective_stop(why);
        self.shared.broadcast(&msg);
    }

    /// Clears a protective stop (the pendant's or dashboard's "unlock protective stop");
    /// the program stays stopped until a client sends it again.
    pub fn unlock_protective_stop(&self) {
        self.shared.lock().safety_status = SAFETY_NORMAL;
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for s in self.shared.sessions.lock().unwrap().values() {
            let _ = s.writer.shutdown(Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.into()).spawn(f)
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Controller> {
        self.ctl.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn accept(
        self: &Arc<Self>,
        listener: TcpListener,
        serve: fn(&Arc<Self>, TcpStream) -> Result<(), RtdeError>,
    ) {
        if let Err(e) = listener.set_nonblocking(true) {
            tracing::error!("ur-emulator: {e}");
            return;
        }
        while !self.stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, peer)) => {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_nodelay(true);
                    let s = self.clone();
                    let _ = spawn("ur-emulator-client", move || {
                        if let Err(e) = serve(&s, stream) {
                            tracing::debug!("ur-emulator: client {peer}: {e}");
                        }
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => tracing::warn!("ur-emulator: accept: {e}"),
            }
        }
    }

    /// The 500 Hz loop: one control cycle, then the data packages that are due.
    fn control_loop(&self) {
        let start = Instant::now();
        let mut cycles = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            cycles += 1;
            let due = start + Duration::from_secs_f64(cycles as f64 * DT);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let (message, tool) = {
                let mut c = self.lock();
                let m = c.cycle(&self.cfg);
                (m, c.tool_target(&self.cfg.base))
            };
            if let Some(m) = message {
                self.broadcast(&m);
            }
            if let Some(stage) = &self.stage {
                let mut s = stage.lock();
                s.set_target(tool.0);
                s.set_suction(tool.1);
            }
            self.send_outputs();
        }
    }

    fn send_outputs(&self) {
        let c = self.lock();
        let mut sessions = self.sessions.lock().unwrap();
        let mut dead = Vec::new();
        for (id, s) in sessions.iter_mut() {
            let Some((recipe, hz)) = s.outputs.as_ref().filter(|_| s.started) else {
                continue;
            };
            if c.time + 1e-9 < s.due {
                continue;
            }
            s.due = c.time + 1.0 / hz;
            let values: Vec<Value> = recipe.names.iter().map(|n| c.output(n)).collect();
            let sent = recipe
                .package(&values)
                .and_then(|p| send(&mut s.writer, &Reply::Data(p)));
            if sent.is_err() {
                dead.push(*id);
            }
        }
        for id in dead {
            sessions.remove(&id);
        }
    }

    fn broadcast(&self, m: &TextMessage) {
        tracing::info!("ur-emulator: {}", m.message);
        for s in self.sessions.lock().unwrap().values_mut() {
            let _ = send(&mut s.writer, &Reply::Text(m.clone()));
        }
    }

    /// One RTDE connection: requests in, replies out, until it closes.
    fn rtde_session(self: &Arc<Self>, mut stream: TcpStream) -> Result<(), RtdeError> {
        let writer = stream.try_clone()?;
        writer.set_write_timeout(Some(Duration::from_millis(100)))?;
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        self.sessions.lock().unwrap().insert(
            id,
            Session {
                writer,
                outputs: None,
                inputs: HashMap::new(),
                started: false,
                due: 0.0,
                next_recipe: 1,
            },
        );
        let result = (|| loop {
            let (command, payload) = rtde::read_packet(&mut stream)?;
            let request = Request::decode(command, &payload)?;
            self.request(id, request)?;
        })();
        // Its inputs are free for another client.
        self.sessions.lock().unwrap().remove(&id);
        self.lock().owners.retain(|_, owner| *owner != id);
        result
    }

    fn request(&self, id: usize, request: Request) -> Result<(), RtdeError> {
        let reply = match request {
            Request::ProtocolVersion(v) => Reply::ProtocolVersion {
                accepted: v == rtde::PROTOCOL_VERSION,
            },
            Request::ControllerVersion => Reply::ControllerVersion(VERSION),
            Request::SetupOutputs { frequency, names } => {
                let types: Vec<String> = names
                    .iter()
                    .map(|n| field_type(Direction::Output, n).map_or(rtde::NOT_FOUND, Type::name))
                    .map(str::to_string)
                    .collect();
                let mut sessions = self.sessions.lock().unwrap();
                let s = sessions.get_mut(&id).ok_or(RtdeError::Closed)?;
                let ok = !names.is_empty()
                    && names.iter().map(String::len).sum::<usize>() + names.len()
                        <= rtde::MAX_NAMES + 1
                    && types.iter().all(|t| t != rtde::NOT_FOUND)
                    && frequency > 0.0;
                let recipe = if ok {
                    let r = s.take_id();
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    let hz = frequency.min(1.0 / DT);
                    s.outputs = Some((Recipe::accepted(r, &names, &types)?, hz));
                    r
                } else {
                    0
                };
                drop(sessions);
                Reply::SetupOutputs { recipe, types }
            }
            Request::SetupInputs { names } => {
                let mut c = self.lock();
                let types: Vec<String> = names
                    .iter()
                    .map(|n| match field_type(Direction::Input, n) {
                        None => rtde::NOT_FOUND,
                        Some(_) if c.owners.get(n).is_some_and(|o| *o != id) => rtde::IN_USE,
                        Some(t) => t.name(),
                    })
                    .map(str::to_string)
                    .collect();
                let ok = !names.is_empty()
                    && types
                        .iter()
                        .all(|t| t != rtde::NOT_FOUND && t != rtde::IN_USE);
                let mut sessions = self.sessions.lock().unwrap();
                let s = sessions.get_mut(&id).ok_or(RtdeError::Closed)?;
                let recipe = if ok {
                    let r = s.take_id();
                    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                    s.inputs.insert(r, Recipe::accepted(r, &refs, &types)?);
                    for n in names {
                        c.owners.insert(n, id);
                    }
                    r
                } else {
                    0
                };
                Reply::SetupInputs { recipe, types }
            }
            Request::Start | Request::Pause => {
                let start = request == Request::Start;
                let time = self.lock().time;
                let mut sessions = self.sessions.lock().unwrap();
                let s = sessions.get_mut(&id).ok_or(RtdeError::Closed)?;
                let accepted = !start || s.outputs.is_some();
                if accepted {
                    s.started = start;
                    s.due = time;
                }
                if start {
                    Reply::Start { accepted }
                } else {
                    Reply::Pause { accepted }
                }
            }
            Request::Data(p) => {
                let recipe = {
                    let sessions = self.sessions.lock().unwrap();
                    let s = sessions.get(&id).ok_or(RtdeError::Closed)?;
                    s.inputs.get(&p.recipe).cloned()
                };
                let Some(recipe) = recipe else {
                    return self.error(id, &format!("no input recipe {}", p.recipe));
                };
                let values = match recipe.values(&p) {
                    Ok(v) => v,
                    Err(e) => return self.error(id, &e.to_string()),
                };
                self.lock().apply(&recipe, &values);
                return Ok(());
            }
            Request::Text(m) => {
                tracing::info!("ur-emulator: client says: {}", m.message);
                return Ok(());
            }
        };
        let mut sessions = self.sessions.lock().unwrap();
        let s = sessions.get_mut(&id).ok_or(RtdeError::Closed)?;
        send(&mut s.writer, &reply)
    }

    /// A text message to one client (a bad data package is reported, not fatal).
    fn error(&self, id: usize, message: &str) -> Result<(), RtdeError> {
        let mut sessions = self.sessions.lock().unwrap();
        let s = sessions.get_mut(&id).ok_or(RtdeError::Closed)?;
        send(
            &mut s.writer,
            &Reply::Text(TextMessage {
                message: message.into(),
                source: "RTDE".into(),
                level: TextMessage::ERROR,
            }),
        )
    }

    /// One secondary-interface connection: a URScript program, installed once the peer
    /// sent its last line (`end`) or closed.
    fn script_session(self: &Arc<Self>, mut stream: TcpStream) -> Result<(), RtdeError> {
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if text.is_empty() => return Err(e.into()),
                Err(_) => break,
            };
            text.extend(&buf[..n]);
            if text.len() > 1 << 20 {
                return Err(RtdeError::Oversized(text.len()));
            }
            if text.ends_with(b"\nend\n") || text.ends_with(b"\nend") && n < buf.len() {
                break;
            }
        }
        let text = String::from_utf8_lossy(&text);
        let message = self.lock().install(&text);
        self.broadcast(&message);
        Ok(())
    }
}

impl Session {
    fn take_id(&mut self) -> u8 {
        let r = self.next_recipe;
        self.next_recipe = self.next_recipe.wrapping_add(1).max(1);
        r
    }
}

fn send(w: &mut TcpStream, reply: &Reply) -> Result<(), RtdeError> {
    rtde::write_packet(w, reply.command(), &reply.payload())
}

fn message(text: String, level: u8) -> TextMessage {
    TextMessage {
        message: text,
        source: "Controller".into(),
        level,
    }
}

/// The emulated controller: the arm, its registers and the running program.
struct Controller {
    time: f64,
    q: [f64; 6],
    qd: [f64; 6],
    target_q: [f64; 6],
    /// The servo target `target_q` solves (NaN while none), and when it came (s).
    target_pose: [f64; 6],
    target_at: f64,
    tcp: [f64; 6],
    tcp_speed: [f64; 6],
    safety_status: i32,
    runtime_state: u32,
    program: Option<Running>,
    int_in: [i32; 48],
    double_in: [f64; 48],
    int_out: [i32; 48],
    double_out: [f64; 48],
    /// `input_bit_register_64..127` and `output_bit_register_64..127`.
    bits_in: u64,
    bits_out: u64,
    /// Standard (0–7), configurable (8–15) and tool (16–17) digital outputs.
    digital_out: u64,
    speed_slider: f64,
    /// Which connection writes each input.
    owners: HashMap<String, usize>,
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
    fn new(q: [f64; 6]) -> Self {
        Self {
            time: 0.0,
            q,
            qd: [0.0; 6],
            target_q: q,
            target_pose: [f64::NAN; 6],
            target_at: 0.0,
            tcp: matrix_to_tcp(&ur5e::forward(&q)),
            tcp_speed: [0.0; 6],
            safety_status: SAFETY_NORMAL,
            runtime_state: STOPPED,
            program: None,
            int_in: [0; 48],
            double_in: [0.0; 48],
            int_out: [0; 48],
            double_out: [0.0; 48],
            bits_in: 0,
            bits_out: 0,
            digital_out: 0,
            speed_slider: 1.0,
            owners: HashMap::new(),
        }
    }

    fn snapshot(&self) -> Snapshot {
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
    fn tool_target(&self, base: &BaseFrame) -> (Option<EePose>, bool) {
        let servoing =
            self.int_out[program::OUT_STATE] == state::SERVOING && self.runtime_state == PLAYING;
        let moving = self.qd.iter().any(|v| *v != 0.0);
        let tool = (servoing || moving).then(|| base.to_world(&tcp_to_matrix(&self.tcp)));
        (tool, self.suction())
    }

    /// A program sent to the secondary interface: loho's starts; anything else is
    /// refused. Returns the controller's message about it.
    fn install(&mut self, text: &str) -> TextMessage {
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
        let tool = ur5e::params().tool;
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

    fn protective_stop(&mut self, why: &str) -> TextMessage {
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
    fn cycle(&mut self, cfg: &EmulatorConfig) -> Option<TextMessage> {
        self.time += DT;
        let before = self.tcp;
        let message = self.step_program(cfg);
        self.tcp = matrix_to_tcp(&ur5e::forward(&self.q));
        for ((v, now), was) in self.tcp_speed.iter_mut().zip(self.tcp).zip(before) {
            *v = (now - was) / DT;
        }
        message
    }

    fn step_program(&mut self, cfg: &EmulatorConfig) -> Option<TextMessage> {
        let vmax = cfg.max_joint_speed * self.speed_slider.clamp(0.0, 1.0);
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
            let (q, err) = ur5e::inverse(&tcp_to_matrix(target), &self.target_q);
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
    fn apply(&mut self, recipe: &Recipe, values: &[Value]) {
        let named: HashMap<&str, Value> = recipe
            .names
            .iter()
            .map(String::as_str)
            .zip(values.iter().copied())
            .collect();
        for (name, v) in &named {
            if let Some(n) = register(name, "input_int_register_") {
                self.int_in[n] = v.as_i32().unwrap_or_default();
            } else if let Some(n) = register(name, "input_double_register_") {
                self.double_in[n] = v.as_f64().unwrap_or_default();
            } else if let Some(n) = register(name, "input_bit_register_") {
                let bit = 1u64 << (n - 64);
                self.bits_in = if *v == Value::Bool(true) {
                    self.bits_in | bit
                } else {
                    self.bits_in & !bit
                };
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
    fn output(&self, name: &str) -> Value {
        let playing = self.runtime_state == PLAYING;
        let register_value = register(name, "output_int_register_")
            .map(|n| Value::Int32(self.int_out[n]))
            .or_else(|| register(name, "input_int_register_").map(|n| Value::Int32(self.int_in[n])))
            .or_else(|| {
                register(name, "output_double_register_").map(|n| Value::Double(self.double_out[n]))
            })
            .or_else(|| {
                register(name, "input_double_register_").map(|n| Value::Double(self.double_in[n]))
            })
            .or_else(|| {
                register(name, "output_bit_register_")
                    .map(|n| Value::Bool(self.bits_out >> (n - 64) & 1 == 1))
            })
            .or_else(|| {
                register(name, "input_bit_register_")
                    .map(|n| Value::Bool(self.bits_in >> (n - 64) & 1 == 1))
            });
        if let Some(v) = register_value {
            return v;
        }
        match name {
            "timestamp" => Value::Double(self.time),
            "actual_q" => Value::Vector6d(self.q),
            "target_q" => Value::Vector6d(self.target_q),
            "actual_qd" | "target_qd" => Value::Vector6d(self.qd),
            "actual_TCP_pose" => Value::Vector6d(self.tcp),
            "target_TCP_pose" => Value::Vector6d(matrix_to_tcp(&ur5e::forward(&self.target_q))),
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

/// N of a register name with this prefix.
fn register(name: &str, prefix: &str) -> Option<usize> {
    let n: usize = name.strip_prefix(prefix)?.parse().ok()?;
    match n {
        0..=47 if !prefix.contains("bit") => Some(n),
        64..=127 if prefix.contains("bit") => Some(n),
        _ => None,
    }
}
