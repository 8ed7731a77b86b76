//! Deployment on a UR arm across processes: `loho driver ur` in a child process (this
//! test binary is also the `loho` command line, `loho_tests::serve_as_child`) against a
//! controller emulator in this one, killed mid-motion.

use std::time::{Duration, Instant};

use loho_core::msg::{ArmState, EeCommand, Header, Pose};
use loho_drivers::ur::program::state;
use loho_drivers::ur::{Emulator, EmulatorConfig};
use loho_runtime::keys;
use loho_runtime::{Bus, BusConfig, Qos};
use loho_tests::{free_port, serve_as_child, wait_for, Node};

fn main() {
    serve_as_child(loho::main_logged);
    // The same lines as libtest, so the suite's summary counts this harness too.
    println!("\nrunning 1 test");
    let start = Instant::now();
    let name = "ur_driver_killed_mid_motion_the_program_stops_the_arm";
    let ok = std::panic::catch_unwind(ur_driver_killed).is_ok();
    println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
    println!(
        "\ntest result: {}. {} passed; {} failed; finished in {:.2}s\n",
        if ok { "ok" } else { "FAILED" },
        ok as u8,
        !ok as u8,
        start.elapsed().as_secs_f64()
    );
    if !ok {
        std::process::exit(101);
    }
}

/// `loho driver ur` in a process of its own against a controller emulator in this one: setpoints over zenoh move the
/// emulated arm; killing the driver (SIGKILL) mid-motion leaves the control program's
/// watchdog to stop the arm.
fn ur_driver_killed() {
    let e = Emulator::start(
        EmulatorConfig {
            rtde_port: 0,
            script_port: 0,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let listen = format!("tcp/127.0.0.1:{}", free_port());
    let (rtde, script) = (
        e.rtde_addr().port().to_string(),
        e.script_addr().port().to_string(),
    );
    let mut driver = Node::spawn(&[
        "driver",
        "ur",
        "--host",
        "127.0.0.1",
        "--rtde-port",
        &rtde,
        "--script-port",
        &script,
        "--robot",
        "ur-test",
        "--listen",
        &listen,
    ]);
    let bus = Bus::open(&BusConfig {
        robot: "ur-test".into(),
        connect: vec![listen],
        ..Default::default()
    })
    .unwrap();
    let state = bus.latest::<ArmState>(keys::STATE).unwrap();
    let start = wait_for("the UR driver's state", Duration::from_secs(30), || {
        state.get()
    });
    assert_eq!(start.fault, "");
    assert!(driver.running());
    let cmd = bus
        .publisher::<EeCommand>(keys::CMD_EE, Qos::Command)
        .unwrap();
    let p = &start.ee_pose.position;
    let yaw = start.ee_pose.yaw();
    // 0.2 m/s along y at 125 Hz for half a second; then the driver dies.
    let t0 = Instant::now();
    for k in 1..=60 {
        let y = p.y + 0.2 * k as f64 / 125.0;
        cmd.put(&EeCommand {
            header: Header::new(0.0, "world"),
            chunk_id: 1,
            target: Pose::from_xyz_yaw(p.x, y, p.z, yaw),
            gripper: 0.0,
        })
        .unwrap();
        let due = t0 + Duration::from_millis(8 * k);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    assert_eq!(
        e.snapshot().program_state,
        state::SERVOING,
        "the arm follows"
    );
    driver.0.kill().unwrap();
    let killed_at = Instant::now();
    let stopped = wait_for("the watchdog's stop", Duration::from_secs(5), || {
        (e.snapshot().program_state == state::WATCHDOG).then(|| killed_at.elapsed())
    });
    let still = wait_for("standstill", Duration::from_secs(5), || {
        e.snapshot().at_rest().then(|| killed_at.elapsed())
    });
    eprintln!(
        "  driver killed: the control program stopping the arm {:.0} ms later, at rest \
         after {:.0} ms",
        stopped.as_secs_f64() * 1e3,
        still.as_secs_f64() * 1e3
    );
    assert!(stopped < Duration::from_secs(1), "{stopped:?}");
    let held = e.snapshot();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(e.snapshot().q, held.q, "the arm stays stopped");
}
