//! The generic arm node around a tiny arm of this test's own (no simulator), over real
//! zenoh sessions on loopback: setpoints reach the arm, the watchdog holds it after
//! 100 ms of silence, the e-stop latches, and setpoints outside the workspace or not
//! finite never reach it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loho_core::config::RuntimeConfig;
use loho_core::msg::{ArmState, BoolMsg, DiagnosticArray, EeCommand, ExecStatus, Header, Pose};
use loho_core::pose::EePose;
use loho_drivers::{Arm, ArmError, ArmNodeConfig};
use loho_runtime::{keys, Bus, Qos};
use loho_tests::eventually;

/// What the arm was asked, in order, with when.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Servo(EePose),
    Suction(bool),
    Hold,
}

#[derive(Default)]
struct Log(Vec<(Instant, Call)>);

impl Log {
    fn servos(&self) -> Vec<EePose> {
        self.0
            .iter()
            .filter_map(|(_, c)| match c {
                Call::Servo(p) => Some(*p),
                _ => None,
            })
            .collect()
    }
    fn holds_after(&self, t: Instant) -> Vec<Instant> {
        self.0
            .iter()
            .filter(|(at, c)| *c == Call::Hold && *at > t)
            .map(|(at, _)| *at)
            .collect()
    }
    fn last_servo_at(&self) -> Option<Instant> {
        self.0
            .iter()
            .rev()
            .find(|(_, c)| matches!(c, Call::Servo(_)))
            .map(|(at, _)| *at)
    }
}

/// An arm that does what it is told at once and writes it down.
struct TestArm {
    log: Arc<Mutex<Log>>,
    pose: EePose,
    suction: bool,
    start: Instant,
}

impl Arm for TestArm {
    fn state(&mut self) -> Result<ArmState, ArmError> {
        Ok(ArmState {
            header: Header::new(self.start.elapsed().as_secs_f64(), "world"),
            ee_pose: self.pose.to_pose(),
            gripper: self.suction as u8 as f64,
            holding: false,
            joint_names: vec![],
            joint_positions: vec![],
            fault: String::new(),
        })
    }
    fn servo(&mut self, target: EePose, _stamp: f64) -> Result<(), ArmError> {
        self.pose = target;
        self.record(Call::Servo(target));
        Ok(())
    }
    fn suction(&mut self, on: bool) -> Result<(), ArmError> {
        self.suction = on;
        self.record(Call::Suction(on));
        Ok(())
    }
    fn hold(&mut self) -> Result<(), ArmError> {
        self.record(Call::Hold);
        Ok(())
    }
}

impl TestArm {
    fn record(&self, c: Call) {
        self.log.lock().unwrap().0.push((Instant::now(), c));
    }
}

fn command(x: f64, gripper: f64) -> EeCommand {
    EeCommand {
        header: Header::new(0.0, "world"),
        chunk_id: 1,
        target: Pose::from_xyz_yaw(x, 0.1, 0.2, 0.0),
        gripper,
    }
}

#[test]
fn the_arm_node_guards_any_arm() {
    let (node_bus, bus) = Bus::loopback_pair().unwrap();

    let log = Arc::new(Mutex::new(Log::default()));
    let mut arm = TestArm {
        log: log.clone(),
        pose: EePose::new(0.5, 0.0, 0.3, 0.0),
        suction: false,
        start: Instant::now(),
    };
    let runtime = RuntimeConfig::default();
    assert_eq!(runtime.watchdog.timeout_ms, 100);
    let cfg = ArmNodeConfig::realtime(&runtime);
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let node = std::thread::spawn(move || loho_drivers::node::run(&node_bus, &mut arm, &cfg, s));

    let diags = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let d = diags.clone();
    let _diag = bus
        .subscribe::<DiagnosticArray, _>(keys::DIAGNOSTICS, move |m| {
            for s in m.unwrap().status {
                let why = s.values.first().map_or(String::new(), |v| v.value.clone());
                d.lock().unwrap().push((s.message, why));
            }
        })
        .unwrap();
    let said = |what: &str| diags.lock().unwrap().iter().any(|(m, _)| m.contains(what));
    let state = bus.latest::<ArmState>(keys::STATE).unwrap();
    let cmd = bus
        .publisher::<EeCommand>(keys::CMD_EE, Qos::Command)
        .unwrap();
    let estop = bus.publisher::<BoolMsg>(keys::ESTOP, Qos::Command).unwrap();
    let status = bus
        .publisher::<ExecStatus>(keys::EXEC_STATUS, Qos::Command)
        .unwrap();
    eventually("the arm's state", || state.get().is_some());
    assert!(bus.is_alive("arm", Duration::from_secs(5)).unwrap());

    // Setpoints reach the arm, suction first.
    status
        .put(&ExecStatus {
            header: Header::new(0.0, ""),
            chunk_id: 1,
            state: ExecStatus::RUNNING,
            reason: "a chunk".into(),
        })
        .unwrap();
    for k in 0..25 {
        cmd.put(&command(0.4 + 0.004 * k as f64, 1.0)).unwrap();
        std::thread::sleep(Duration::from_millis(8));
    }
    eventually("25 setpoints at the arm", || {
        log.lock().unwrap().servos().len() == 25
    });
    {
        let l = log.lock().unwrap();
        assert!((l.servos()[24].x - 0.496).abs() < 1e-9);
        assert_eq!(l.0[0].1, Call::Suction(true));
        assert!(matches!(l.0[1].1, Call::Servo(_)));
    }
    eventually("the state follows", || {
        state
            .get()
            .is_some_and(|s| (s.ee_pose.position.x - 0.496).abs() < 1e-9)
    });

    // Silence: the watchdog holds the arm after 100 ms, and says so (a chunk is running).
    eventually("the watchdog", || said("watchdog"));
    {
        let l = log.lock().unwrap();
        let last = l.last_servo_at().unwrap();
        let holds = l.holds_after(last);
        assert_eq!(holds.len(), 1, "one hold for one silence");
        let after = holds[0] - last;
        assert!(
            after >= Duration::from_millis(100) && after < Duration::from_millis(1000),
            "held {after:?} after the last setpoint"
        );
    }
    assert!(diags
        .lock()
        .unwrap()
        .iter()
        .any(|(m, why)| m == "watchdog" && why.contains("holding")));

    // Outside the box, or not finite: refused with the reason, never at the arm.
    let before = log.lock().unwrap().servos().len();
    cmd.put(&command(2.0, 1.0)).unwrap();
    cmd.put(&command(f64::NAN, 1.0)).unwrap();
    cmd.put(&command(0.5, f64::INFINITY)).unwrap();
    eventually("three refusals", || {
        diags
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m == "command refused")
            .count()
            == 3
    });
    assert!(diags
        .lock()
        .unwrap()
        .iter()
        .any(|(m, why)| m == "command refused" && why.contains("outside the workspace")));
    assert_eq!(log.lock().unwrap().servos().len(), before);

    // E-stop: the arm holds and setpoints are ignored until it is cleared.
    let t = Instant::now();
    estop.put(&BoolMsg { data: true }).unwrap();
    eventually("the e-stop holds", || {
        !log.lock().unwrap().holds_after(t).is_empty()
    });
    for _ in 0..5 {
        cmd.put(&command(0.45, 0.0)).unwrap();
    }
    eventually("the e-stop is reported", || said("e-stop latched"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(log.lock().unwrap().servos().len(), before);
    estop.put(&BoolMsg { data: false }).unwrap();
    eventually("the e-stop clears", || said("e-stop cleared"));
    cmd.put(&command(0.45, 0.0)).unwrap();
    eventually("setpoints again", || {
        log.lock().unwrap().servos().len() == before + 1
    });

    // An e-stop payload nobody can read latches the e-stop too.
    bus.put_bytes(keys::ESTOP, vec![0xde, 0xad]).unwrap();
    eventually("garbage on estop", || said("undecodable estop"));
    cmd.put(&command(0.46, 0.0)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(log.lock().unwrap().servos().len(), before + 1);

    stop.store(true, Ordering::Relaxed);
    node.join().unwrap().unwrap();
    // Stopping the node holds the arm.
    assert_eq!(log.lock().unwrap().0.last().unwrap().1, Call::Hold);
}
