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
//! when backed by a simulator's stage ([`ToolFollower`]), the simulated tool following
//! the emulated one.
//!
//! What it does not: any URScript but loho's program (another program is refused with a
//! text message), the secondary interface's 10 Hz state messages, the primary and
//! real-time interfaces, the dashboard server, dynamics (joint accelerations are not
//! limited while servoing, torques and currents read zero), `servoj`'s lookahead filter,
//! safety planes and tool limits, and every output not listed in [`Controller::output`]
//! (it reads zero).
//!
//! This file is the controller's network side (RTDE sessions, the secondary interface,
//! the 500 Hz loop); [`controller`] is the arm, its registers and the program.

mod controller;

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loho_core::kinematics::Kinematics;
use loho_core::pose::HOME;
use loho_core::robot::Robot;

use crate::arm::ToolFollower;

use self::controller::Controller;
use super::frames::BaseFrame;
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
    /// The arm: DH parameters, tool, joint speed limit, and where its base frame sits in
    /// the simulator's world (a backed emulator).
    pub kinematics: Kinematics,
}

impl EmulatorConfig {
    /// Where the robot's base frame sits in the world.
    pub fn base(&self) -> BaseFrame {
        BaseFrame::from(&self.kinematics)
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: IpAddr::from([127, 0, 0, 1]),
            rtde_port: rtde::PORT,
            script_port: super::SECONDARY_PORT,
            kinematics: Robot::ur5e().kinematics.clone(),
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
    follower: Option<Arc<dyn ToolFollower>>,
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
    /// Listens on the configured ports and starts the 500 Hz loop. With a `follower`
    /// (the simulator's stage), the simulated tool follows the emulated one and its
    /// suction.
    pub fn start(
        cfg: EmulatorConfig,
        follower: Option<Arc<dyn ToolFollower>>,
    ) -> std::io::Result<Self> {
        let rtde_listener = TcpListener::bind((cfg.listen, cfg.rtde_port))?;
        let script_listener = TcpListener::bind((cfg.listen, cfg.script_port))?;
        // Start where the simulated tool is, or above the table's centre, pointing down.
        let tip = follower.as_ref().map_or(HOME, |f| f.tip());
        let k = &cfg.kinematics;
        let ctl = Controller::new(k, k.inverse(&cfg.base().tcp_matrix(&tip), &k.home).0);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            ctl: Mutex::new(ctl),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicUsize::new(1),
            cfg,
            follower,
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
                let m = c.cycle();
                (m, c.tool_target(&self.cfg.base()))
            };
            if let Some(m) = message {
                self.broadcast(&m);
            }
            if let Some(f) = &self.follower {
                f.follow(tool.0, tool.1);
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
