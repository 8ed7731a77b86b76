//! The UR driver against the controller emulator over loopback TCP: the protocol as a
//! raw client sees it, the driver tracking a 125 Hz setpoint stream, the control
//! program's watchdog, the e-stop through the arm node, a protective stop and a lost
//! controller reaching `exec/status` and `diagnostics`. Figures go to stderr
//! (`--nocapture`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loho_core::clock::ClockSource;
use loho_core::config::RuntimeConfig;
use loho_core::msg::{
    ActionChunk, ArmState, BoolMsg, DiagnosticArray, ExecStatus, Header, Keypose, Pose, Time,
};
use loho_core::pose::EePose;
use loho_core::robot::Robot;
use loho_core::trajectory::{pick_place, PrimitiveParams};
use loho_drivers::ur::emulator::{Snapshot, PLAYING, PROTECTIVE_STOP, STOPPED};
use loho_drivers::ur::program::{state, ControlProgram};
use loho_drivers::ur::rtde::{self, Recipe, Reply, Request, TextMessage, Value};
use loho_drivers::ur::{Emulator, EmulatorConfig, UrArm, UrConfig};
use loho_drivers::{Arm, ArmError, ArmNodeConfig};
use loho_runtime::bus::Subscription;
use loho_runtime::controller::{self, ControllerConfig};
use loho_runtime::{keys, Bus, Qos};
use loho_tests::{eventually, log, put_until, wait_for, Log};

fn emulator() -> Emulator {
    Emulator::start(
        EmulatorConfig {
            rtde_port: 0,
            script_port: 0,
            ..Default::default()
        },
        None,
    )
    .unwrap()
}

fn ur_config(e: &Emulator) -> UrConfig {
    UrConfig {
        rtde_port: e.rtde_addr().port(),
        script_port: e.script_addr().port(),
        ..UrConfig::new("127.0.0.1", Robot::ur5e(), Duration::from_millis(100))
    }
}

fn pose(s: &ArmState) -> EePose {
    EePose::from_pose(&s.ee_pose)
}

fn dist(a: &EePose, b: &EePose) -> f64 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2) + (a.z - b.z).powi(2)).sqrt()
}

/// A raw RTDE client: one request, its reply (skipping text messages).
fn ask(s: &mut TcpStream, r: &Request) -> Reply {
    rtde::write_packet(s, r.command(), &r.payload()).unwrap();
    loop {
        let (c, p) = rtde::read_packet(s).unwrap();
        match Reply::decode(c, &p).unwrap() {
            Reply::Text(_) => continue,
            reply => return reply,
        }
    }
}

#[test]
fn the_emulator_speaks_rtde_as_a_controller_does() {
    let e = emulator();
    let mut s = TcpStream::connect(e.rtde_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Protocol 1 is refused, 2 accepted; the version is an e-Series one.
    assert_eq!(
        ask(&mut s, &Request::ProtocolVersion(1)),
        Reply::ProtocolVersion { accepted: false }
    );
    assert_eq!(
        ask(&mut s, &Request::ProtocolVersion(2)),
        Reply::ProtocolVersion { accepted: true }
    );
    let Reply::ControllerVersion(v) = ask(&mut s, &Request::ControllerVersion) else {
        panic!()
    };
    assert_eq!(v.rate_hz(), 500.0);
    // Start before any output recipe: refused.
    assert_eq!(
        ask(&mut s, &Request::Start),
        Reply::Start { accepted: false }
    );
    // An unknown name: NOT_FOUND, recipe 0.
    let Reply::SetupOutputs { recipe, types } = ask(
        &mut s,
        &Request::SetupOutputs {
            frequency: 125.0,
            names: vec!["timestamp".into(), "no_such_output".into()],
        },
    ) else {
        panic!()
    };
    assert_eq!(
        (recipe, types),
        (0, vec!["DOUBLE".into(), "NOT_FOUND".into()])
    );
    // A good one, at 125 Hz: packages 8 ms apart on the controller's clock.
    let names = ["timestamp", "actual_q", "runtime_state", "safety_status"];
    let Reply::SetupOutputs { recipe, types } = ask(
        &mut s,
        &Request::SetupOutputs {
            frequency: 125.0,
            names: names.map(String::from).to_vec(),
        },
    ) else {
        panic!()
    };
    let outputs = Recipe::accepted(recipe, &names, &types).unwrap();
    // Inputs: one client owns a register; a second one hears IN_USE.
    let Reply::SetupInputs { recipe, types } = ask(
        &mut s,
        &Request::SetupInputs {
            names: vec!["input_int_register_30".into()],
        },
    ) else {
        panic!()
    };
    assert!(recipe > 0 && types == ["INT32"]);
    let mut other = TcpStream::connect(e.rtde_addr()).unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let Reply::SetupInputs { recipe: r2, types } = ask(
        &mut other,
        &Request::SetupInputs {
            names: vec![
                "input_int_register_30".into(),
                "input_int_register_31".into(),
            ],
        },
    ) else {
        panic!()
    };
    assert_eq!((r2, types), (0, vec!["IN_USE".into(), "INT32".into()]));
    assert_eq!(
        ask(&mut s, &Request::Start),
        Reply::Start { accepted: true }
    );
    let mut stamps = Vec::new();
    let t0 = Instant::now();
    while stamps.len() < 125 {
        let (c, p) = rtde::read_packet(&mut s).unwrap();
        if let Reply::Data(p) = Reply::decode(c, &p).unwrap() {
            let v = outputs.values(&p).unwrap();
            stamps.push(v[0].as_f64().unwrap());
            assert_eq!(v[2], Value::Uint32(STOPPED), "no program yet");
            assert_eq!(v[3], Value::Int32(1), "safety NORMAL");
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let steps: Vec<f64> = stamps.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(steps.iter().all(|d| (d - 0.008).abs() < 1e-6), "{steps:?}");
    eprintln!("125 data packages at 125 Hz in {wall:.3} s of wall time");
    // A client sending garbage loses its connection, and only it.
    for garbage in [vec![0u8, 1, b'U'], vec![0xff, 0xff, b'O'], vec![0, 3, b'X']] {
        let mut bad = TcpStream::connect(e.rtde_addr()).unwrap();
        bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        bad.write_all(&garbage).unwrap();
        assert!(
            matches!(bad.read(&mut [0u8; 16]), Ok(0) | Err(_)),
            "the emulator closes a connection speaking garbage"
        );
    }
    let (c, _) = rtde::read_packet(&mut s).unwrap();
    assert_eq!(
        c,
        rtde::command::DATA_PACKAGE,
        "the good client is still served"
    );
    // Another program than loho's is refused, with a text message.
    let mut script = TcpStream::connect(e.script_addr()).unwrap();
    script
        .write_all(b"def other():\n  popup(\"hi\")\nend\n")
        .unwrap();
    drop(script);
    let message = wait_for("the refusal", Duration::from_secs(5), || {
        let (c, p) = rtde::read_packet(&mut s).unwrap();
        match Reply::decode(c, &p).unwrap() {
            Reply::Text(m) => Some(m),
            _ => None,
        }
    });
    assert_eq!(message.level, TextMessage::ERROR);
    assert!(message.message.contains("loho's program"), "{message:?}");
    assert_eq!(e.snapshot().runtime_state, STOPPED);
    // The program text round-trips through the emulator's reader.
    let p = ur_config(&e).program;
    assert_eq!(ControlProgram::parse(&p.script()).unwrap(), p);
}

/// Streams `poses` to the arm at 125 Hz; returns the largest and mean distance between
/// where the arm was halfway between two setpoints and the newest one.
fn stream(arm: &mut UrArm, poses: &[EePose]) -> (f64, f64) {
    let dt = Duration::from_secs_f64(1.0 / 125.0);
    let t0 = Instant::now();
    let mut errors = Vec::new();
    for (k, p) in poses.iter().enumerate() {
        arm.servo(*p, 0.0).unwrap();
        let half = t0 + dt * k as u32 + dt / 2;
        std::thread::sleep(half.saturating_duration_since(Instant::now()));
        errors.push(dist(&pose(&arm.state().unwrap()), p));
        let due = t0 + dt * (k as u32 + 1);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    let max = errors.iter().cloned().fold(0.0, f64::max);
    (max, errors.iter().sum::<f64>() / errors.len().max(1) as f64)
}

fn plan_from(arm: &mut UrArm, pick: EePose, place: EePose) -> Vec<EePose> {
    let start = pose(&arm.state().unwrap());
    pick_place(
        start,
        pick,
        place,
        &PrimitiveParams::for_robot(Robot::ur5e()),
    )
    .unwrap()
    .iter()
    .map(|s| s.pose)
    .collect()
}

#[test]
fn the_driver_tracks_a_125_hz_stream_and_the_program_stops_a_silent_arm() {
    let e = emulator();
    let mut arm = UrArm::connect(ur_config(&e)).unwrap();
    let s = arm.state().unwrap();
    assert_eq!(s.fault, "");
    assert_eq!(s.joint_positions.len(), 6);
    let poses = plan_from(
        &mut arm,
        EePose::new(0.4, 0.2, 0.02, 0.5),
        EePose::new(0.6, -0.3, 0.05, -1.0),
    );
    arm.suction(true).unwrap();
    let (max, mean) = stream(&mut arm, &poses);
    eprintln!(
        "tracking a pick-and-place of {} setpoints at 125 Hz: max {:.2} mm, mean {:.3} mm",
        poses.len(),
        max * 1e3,
        mean * 1e3
    );
    // The figure is a report, not a bound (it depends on this machine's load): the
    // emulated joints reach each setpoint over one setpoint interval, so halfway they lag
    // by half a step. What must hold is that the arm ends where the stream ends.
    std::thread::sleep(Duration::from_millis(20));
    let end = pose(&arm.state().unwrap());
    assert!(dist(&end, poses.last().unwrap()) < 1e-4, "{end:?}");
    assert!(
        arm.state().unwrap().gripper == 1.0,
        "the suction output is on"
    );

    // Silence mid-motion (a hung or killed driver): the program's watchdog stops the arm.
    let moving: Vec<EePose> = plan_from(
        &mut arm,
        EePose::new(0.3, -0.3, 0.05, 0.0),
        EePose::new(0.7, 0.3, 0.05, 0.0),
    );
    stream(&mut arm, &moving[..moving.len() / 3]);
    let silent_at = Instant::now();
    assert_eq!(e.snapshot().program_state, state::SERVOING);
    wait_for("the watchdog's stop", Duration::from_secs(2), || {
        (e.snapshot().program_state == state::WATCHDOG).then_some(())
    });
    let after = silent_at.elapsed();
    let stopped: Snapshot = wait_for("standstill", Duration::from_secs(2), || {
        Some(e.snapshot()).filter(|s| s.at_rest())
    });
    let still = silent_at.elapsed();
    eprintln!(
        "setpoints stopped: the program stopping the arm after {:.0} ms (watchdog {} \
         cycles), at rest after {:.0} ms",
        after.as_secs_f64() * 1e3,
        ur_config(&e).program.watchdog_cycles,
        still.as_secs_f64() * 1e3
    );
    assert!(after >= Duration::from_millis(90), "{after:?}");
    assert_eq!(
        stopped.runtime_state, PLAYING,
        "a watchdog stop is not a fault"
    );
    // Setpoints again: it follows again.
    let here = pose(&arm.state().unwrap());
    arm.servo(here, 0.0).unwrap();
    eventually("servoing again", || {
        e.snapshot().program_state == state::SERVOING
    });
}

#[test]
fn an_impossible_jump_is_a_protective_stop_and_nothing_restarts_by_itself() {
    let e = emulator();
    let mut arm = UrArm::connect(ur_config(&e)).unwrap();
    let here = pose(&arm.state().unwrap());
    // 30 cm in one setpoint.
    arm.servo(EePose::new(here.x - 0.3, here.y, here.z, here.yaw), 0.0)
        .unwrap();
    eventually("the protective stop", || {
        e.snapshot().safety_status == PROTECTIVE_STOP
    });
    let s = arm.state().unwrap();
    assert!(s.fault.contains("PROTECTIVE_STOP"), "{}", s.fault);
    assert!(dist(&pose(&s), &here) < 1e-3, "the arm did not move");
    assert!(matches!(arm.servo(here, 0.0), Err(ArmError::Refused(_))));
    // Unlocked on the pendant: still no program until a driver starts one.
    e.unlock_protective_stop();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(e.snapshot().runtime_state, STOPPED);
    assert!(arm.state().unwrap().fault.contains("not running"));
    drop(arm);
    let mut again = UrArm::connect(ur_config(&e)).unwrap();
    assert_eq!(again.state().unwrap().fault, "");
}

/// The emulator, the UR driver in the generic arm node, and a controller node, on one
/// loopback bus.
struct Graph {
    /// `None` once the test shut the controller down.
    emulator: Option<Emulator>,
    bus: Bus,
    status: Log<ExecStatus>,
    diags: Log<DiagnosticArray>,
    _subs: [Subscription; 2],
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Graph {
    fn start() -> Self {
        let e = emulator();
        let arm = UrArm::connect(ur_config(&e)).unwrap();
        let (node_bus, bus) = Bus::loopback_pair().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let runtime = RuntimeConfig::default();
        let (b, s, r) = (node_bus.clone(), stop.clone(), runtime.clone());
        let arm_node = std::thread::spawn(move || {
            let mut arm = arm;
            loho_drivers::node::run(&b, &mut arm, &ArmNodeConfig::realtime(&r), s).unwrap();
        });
        let (b, s) = (node_bus, stop.clone());
        let ctrl = std::thread::spawn(move || {
            let mut cfg = ControllerConfig::new(&runtime, ClockSource::Wall);
            cfg.node.watch.clear();
            controller::run(&b, &cfg, s).unwrap();
        });
        let (status, a) = log::<ExecStatus>(&bus, keys::EXEC_STATUS);
        let (diags, b) = log::<DiagnosticArray>(&bus, keys::DIAGNOSTICS);
        for node in ["arm", "controller"] {
            eventually(node, || {
                bus.is_alive(node, Duration::from_millis(200)).unwrap()
            });
        }
        Self {
            emulator: Some(e),
            bus,
            status,
            diags,
            _subs: [a, b],
            stop,
            threads: vec![arm_node, ctrl],
        }
    }

    /// Whether `exec/status` said `state` of chunk `id`, with a reason containing `why`.
    fn said(&self, id: u64, state: u8, why: &str) -> bool {
        self.status
            .lock()
            .unwrap()
            .iter()
            .any(|(_, s)| s.chunk_id == id && s.state == state && s.reason.contains(why))
    }

    fn e(&self) -> &Emulator {
        self.emulator.as_ref().expect("the controller is up")
    }

    /// Sends a pick-and-place chunk far enough to take a few seconds, until the controller
    /// answers it (the first put may beat the subscription's propagation).
    fn run_chunk(&self, id: u64) {
        let keypose = |x: f64, y: f64, gripper: f64| Keypose {
            pose: Pose::from_xyz_yaw(x, y, 0.02, 0.0),
            gripper,
            duration: 0.0,
        };
        let chunk = ActionChunk {
            header: Header::new(0.0, "world"),
            obs_stamp: Time::default(),
            chunk_id: id,
            subtask: "test".into(),
            keyposes: vec![keypose(0.3, -0.4, 1.0), keypose(0.7, 0.4, 0.0)],
        };
        let publisher = self
            .bus
            .publisher::<ActionChunk>(keys::ACTION, Qos::Command)
            .unwrap();
        put_until(&publisher, &chunk, "the controller's answer", || {
            self.status
                .lock()
                .unwrap()
                .iter()
                .any(|(_, s)| s.chunk_id == id)
                .then_some(())
        });
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn the_e_stop_stops_the_arm_within_one_control_period() {
    let g = Graph::start();
    g.run_chunk(1);
    assert!(g.said(1, ExecStatus::RUNNING, ""));
    eventually("the arm moving", || !g.e().snapshot().at_rest());
    std::thread::sleep(Duration::from_millis(300));
    let estop = g
        .bus
        .publisher::<BoolMsg>(keys::ESTOP, Qos::Command)
        .unwrap();
    let t0 = Instant::now();
    estop.put(&BoolMsg { data: true }).unwrap();
    wait_for("the program's e-stop", Duration::from_secs(2), || {
        (g.e().snapshot().program_state == state::STOPPED).then_some(())
    });
    let seen = t0.elapsed();
    wait_for("standstill", Duration::from_secs(2), || {
        g.e().snapshot().at_rest().then_some(())
    });
    let still = t0.elapsed();
    eprintln!(
        "e-stop: the control program stopping after {:.1} ms, the arm at rest after {:.0} ms",
        seen.as_secs_f64() * 1e3,
        still.as_secs_f64() * 1e3
    );
    // The figure is the report (one control period is 8 ms); the bound only catches a
    // broken path.
    assert!(seen < Duration::from_millis(100), "{seen:?}");
    eventually("the chunk stopped", || {
        g.said(1, ExecStatus::STOPPED, "e-stop")
    });
    assert_eq!(g.e().snapshot().runtime_state, PLAYING);
}

#[test]
fn a_protective_stop_reaches_exec_status_and_diagnostics() {
    let g = Graph::start();
    g.run_chunk(7);
    assert!(g.said(7, ExecStatus::RUNNING, ""));
    std::thread::sleep(Duration::from_millis(200));
    g.e().protective_stop("collision (test)");
    eventually("exec/status STOPPED with the reason", || {
        g.said(7, ExecStatus::STOPPED, "PROTECTIVE_STOP")
    });
    eventually("the fault on diagnostics", || {
        g.diags.lock().unwrap().iter().any(|(_, d)| {
            d.status.iter().any(|s| {
                s.name.contains("arm")
                    && s.message == "arm fault"
                    && s.values.iter().any(|v| v.value.contains("PROTECTIVE_STOP"))
            })
        })
    });
    // The next chunk does not move the arm.
    let before = g.e().snapshot();
    g.run_chunk(8);
    assert!(g.said(8, ExecStatus::STOPPED, "PROTECTIVE_STOP"));
    assert_eq!(g.e().snapshot().q, before.q);
}

#[test]
fn a_lost_controller_stops_the_chunk() {
    let mut g = Graph::start();
    g.run_chunk(3);
    // The controller goes away (power cut, cable pulled): RTDE closes.
    drop(g.emulator.take());
    eventually("exec/status STOPPED: arm disconnected", || {
        g.said(3, ExecStatus::STOPPED, "disconnected")
    });
    // The fault is a diagnostics message of its own, which may land after the status.
    eventually("the loss on diagnostics", || {
        g.diags
            .lock()
            .unwrap()
            .iter()
            .any(|(_, d)| d.status.iter().any(|s| s.message == "arm fault"))
    });
}
