//! The UR driver against a misbehaving controller of this test's own: it answers the
//! handshake, runs "the program" for a moment, then sends garbage. Every kind is a typed
//! error, no setpoint goes out after it, and the hold still reaches the controller.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loho_core::pose::EePose;
use loho_core::robot::Robot;
use loho_drivers::ur::program::mode;
use loho_drivers::ur::rtde::{self, Recipe, Reply, Request, Value};
use loho_drivers::ur::{UrArm, UrConfig};
use loho_drivers::{Arm, ArmError};
use loho_tests::{eventually, wait_for};

/// The recipe `id` of `names` as the controller's table types them, and the types.
fn recipe(id: u8, dir: rtde::Direction, names: &[String]) -> (Recipe, Vec<String>) {
    let types: Vec<String> = names
        .iter()
        .map(|n| rtde::field_type(dir, n).unwrap().name().to_string())
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    (Recipe::accepted(id, &refs, &types).unwrap(), types)
}

/// A controller that answers the handshake, runs "the program" for a few packages, then
/// sends `garbage`; records the input packages it receives.
fn misbehaving_controller(garbage: Vec<u8>) -> (u16, u16, Arc<Mutex<Vec<Vec<Value>>>>) {
    let rtde_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let script_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let ports = (
        rtde_l.local_addr().unwrap().port(),
        script_l.local_addr().unwrap().port(),
    );
    std::thread::spawn(move || {
        let (mut s, _) = script_l.accept().unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
    });
    let inputs = Arc::new(Mutex::new(Vec::new()));
    let seen = inputs.clone();
    std::thread::spawn(move || {
        let (mut s, _) = rtde_l.accept().unwrap();
        let mut outputs = None;
        let mut input = None;
        let send =
            |s: &mut TcpStream, r: Reply| rtde::write_packet(s, r.command(), &r.payload()).unwrap();
        loop {
            let Ok((c, p)) = rtde::read_packet(&mut s) else {
                return;
            };
            match Request::decode(c, &p).unwrap() {
                Request::ProtocolVersion(_) => {
                    send(&mut s, Reply::ProtocolVersion { accepted: true })
                }
                Request::ControllerVersion => send(
                    &mut s,
                    Reply::ControllerVersion(loho_drivers::ur::emulator::VERSION),
                ),
                Request::SetupOutputs { names, .. } => {
                    let (r, types) = recipe(1, rtde::Direction::Output, &names);
                    outputs = Some(r);
                    send(&mut s, Reply::SetupOutputs { recipe: 1, types });
                }
                Request::SetupInputs { names } => {
                    let (r, types) = recipe(2, rtde::Direction::Input, &names);
                    input = Some(r);
                    send(&mut s, Reply::SetupInputs { recipe: 2, types });
                }
                Request::Start => {
                    send(&mut s, Reply::Start { accepted: true });
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        let outputs = outputs.unwrap();
        let input = input.unwrap();
        let mut reader = s.try_clone().unwrap();
        std::thread::spawn(move || {
            while let Ok((c, p)) = rtde::read_packet(&mut reader) {
                if let Ok(Request::Data(p)) = Request::decode(c, &p) {
                    seen.lock().unwrap().push(input.values(&p).unwrap());
                }
            }
        });
        // A running program for 0.2 s, then the garbage, then nothing.
        for beat in 0..100 {
            let v = vec![
                Value::Double(beat as f64 * 0.002),
                Value::Vector6d([0.5, 0.0, 0.45, std::f64::consts::PI, 0.0, 0.0]),
                Value::Vector6d([0.0; 6]),
                Value::Vector6d([0.0; 6]),
                Value::Int32(7),
                Value::Int32(1),
                Value::Uint32(2),
                Value::Uint64(0),
                Value::Int32(beat),
                Value::Int32(0),
            ];
            let p = outputs.package(&v).unwrap();
            send(&mut s, Reply::Data(p));
            std::thread::sleep(Duration::from_millis(2));
        }
        s.write_all(&garbage).unwrap();
        std::thread::sleep(Duration::from_secs(3));
    });
    (ports.0, ports.1, inputs)
}

#[test]
fn malformed_packets_from_the_controller_are_errors_and_the_arm_is_told_to_hold() {
    for (what, garbage) in [
        ("undersized", vec![0, 1, b'U']),
        ("oversized", vec![0xff, 0xff, b'U', 1]),
        (
            "short data package",
            rtde::encode(b'U', &[1, 0, 0]).unwrap(),
        ),
        ("unknown command", rtde::encode(b'X', &[]).unwrap()),
    ] {
        let (rtde_port, script_port, inputs) = misbehaving_controller(garbage);
        let cfg = UrConfig {
            rtde_port,
            script_port,
            ..UrConfig::new("127.0.0.1", Robot::ur5e(), Duration::from_millis(100))
        };
        let mut arm = UrArm::connect(cfg).unwrap();
        let e = wait_for(what, Duration::from_secs(3), || arm.state().err());
        eprintln!("{what}: {e}");
        assert!(matches!(e, ArmError::Disconnected(_)), "{what}: {e}");
        assert!(arm.servo(EePose::new(0.5, 0.0, 0.4, 0.0), 0.0).is_err());
        arm.hold().unwrap();
        eventually("the hold at the controller", || {
            inputs
                .lock()
                .unwrap()
                .last()
                .is_some_and(|v| v[1] == Value::Int32(mode::HOLD))
        });
        // No setpoint went out after the failure.
        assert!(inputs
            .lock()
            .unwrap()
            .iter()
            .all(|v| v[1] != Value::Int32(mode::SERVO)));
    }
}
