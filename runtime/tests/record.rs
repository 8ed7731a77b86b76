//! A recording made from another session and replayed onto a third: the chosen topics,
//! byte for byte, with their timing; commands stay out unless named.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use loho_core::msg::*;
use loho_runtime::record::{RecordError, Recorder};
use loho_runtime::replay::{replay, ReplayOptions};
use loho_runtime::{keys, Bus, Qos};
use loho_tests::{eventually, log};

fn state(k: u32) -> ArmState {
    ArmState {
        header: Header::new(k as f64, "world"),
        ee_pose: Pose::from_xyz_yaw(0.5, 0.0, 0.2 + k as f64 * 1e-3, 0.0),
        ..Default::default()
    }
}

fn cmd(k: u32) -> EeCommand {
    EeCommand {
        header: Header::new(k as f64, "world"),
        chunk_id: 1,
        target: Pose::from_xyz_yaw(0.5, 0.0, 0.2, 0.0),
        gripper: 0.0,
    }
}

#[test]
fn a_recording_of_chosen_topics_replays_with_its_timing_and_no_commands() {
    // Into a folder that does not exist yet, as `runs/…` on a fresh clone.
    let dir = std::env::temp_dir().join(format!("loho-replay-{}", std::process::id()));
    let path = dir.join("runs").join("rec.mcap");
    let (graph, recorder_bus) = Bus::loopback_pair().unwrap();
    let topics: Vec<String> = [keys::STATE, keys::CMD_EE].map(String::from).into();
    let e = Recorder::start(&recorder_bus, &path, &["state/x".into()]).err();
    assert!(matches!(e, Some(RecordError::UnknownTopic { .. })), "{e:?}");
    let rec = Recorder::start(&recorder_bus, &path, &topics).unwrap();
    let st = graph
        .publisher::<ArmState>(keys::STATE, Qos::Stream)
        .unwrap();
    let ee = graph
        .publisher::<EeCommand>(keys::CMD_EE, Qos::Command)
        .unwrap();
    let text = graph
        .publisher::<StringMsg>(keys::INSTRUCTION, Qos::Command)
        .unwrap();
    // Until the recorder's route is up, then 30 states 20 ms apart with a command each.
    let (seen, _sub) = log::<ArmState>(&recorder_bus, keys::STATE);
    let (seen_cmds, _sub_cmds) = log::<EeCommand>(&recorder_bus, keys::CMD_EE);
    eventually("the recorder's route", || {
        st.put(&state(0)).unwrap();
        !seen.lock().unwrap().is_empty()
    });
    for k in 1..=30 {
        st.put(&state(k)).unwrap();
        ee.put(&cmd(k)).unwrap();
        text.put(&StringMsg {
            data: "not recorded".into(),
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    // Each command follows its state: the last one may land after the last state.
    eventually("the last state and command", || {
        seen.lock().unwrap().len() >= 31 && seen_cmds.lock().unwrap().len() >= 30
    });
    let summary = rec.finish().unwrap();
    assert_eq!(summary.messages.get(keys::INSTRUCTION), None);
    assert_eq!(summary.messages[keys::CMD_EE], 30);
    let recorded = summary.messages[keys::STATE];

    // Replayed onto another pair: the states, in order, ~0.6 s apart end to end; no command.
    let (player, listener) = Bus::loopback_pair().unwrap();
    let (states, _s) = log::<ArmState>(&listener, keys::STATE);
    let (cmds, _c) = log::<EeCommand>(&listener, keys::CMD_EE);
    // The route first: a state the recording does not hold.
    let warm = player
        .publisher::<ArmState>(keys::STATE, Qos::Stream)
        .unwrap();
    eventually("the listener's route", || {
        warm.put(&state(999)).unwrap();
        !states.lock().unwrap().is_empty()
    });
    states.lock().unwrap().clear();
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let mut calls = 0;
    let r = replay(
        &player,
        &path,
        &ReplayOptions::default(),
        &stop,
        &mut |_, _| calls += 1,
    )
    .unwrap();
    let took = t.elapsed();
    assert_eq!(r.messages[keys::STATE], recorded);
    assert_eq!(
        r.messages.get(keys::CMD_EE),
        None,
        "commands stay out by default"
    );
    assert!(!r.cut_short);
    assert_eq!(calls, recorded);
    assert!(r.span >= Duration::from_millis(580), "{:?}", r.span);
    assert!(took >= r.span, "{took:?} < {:?}", r.span);
    eventually("the last replayed state", || {
        states
            .lock()
            .unwrap()
            .iter()
            .any(|(_, s)| s.header.stamp.sec == 30)
    });
    let mut got: Vec<f64> = states
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| s.header.stamp.as_secs_f64())
        .filter(|&t| t != 999.0) // the warm-up's last, still on its way
        .collect();
    got.dedup(); // the warm-up may have put state 0 more than once
    assert_eq!(got, (0..=30).map(f64::from).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(100));
    assert!(cmds.lock().unwrap().is_empty());

    // Named, commands replay too, here twice as fast; a bad speed or topic is refused.
    let opts = ReplayOptions {
        topics: vec![keys::CMD_EE.into()],
        speed: 2.0,
    };
    let t = Instant::now();
    let r = replay(&player, &path, &opts, &stop, &mut |_, _| {}).unwrap();
    assert_eq!(r.messages[keys::CMD_EE], 30);
    assert!(
        t.elapsed() >= r.span / 2 && t.elapsed() < r.span,
        "{:?}",
        t.elapsed()
    );
    eventually("the commands", || cmds.lock().unwrap().len() == 30);
    for bad in [
        ReplayOptions {
            speed: 0.0,
            ..Default::default()
        },
        ReplayOptions {
            speed: f64::NAN,
            ..Default::default()
        },
        ReplayOptions {
            topics: vec!["nonsense".into()],
            ..Default::default()
        },
    ] {
        assert!(
            replay(&player, &path, &bad, &stop, &mut |_, _| {}).is_err(),
            "{bad:?}"
        );
    }

    // A file cut short (its recorder killed) inside the last chunk holding states replays
    // the chunks before the cut and says so. (A cut at a fixed share of the file may fall
    // after every chunk: the index repeats the schemas and can outweigh the data.)
    let bytes = std::fs::read(&path).unwrap();
    let index = mcap::Summary::read(&bytes)
        .unwrap()
        .expect("a finished file's index");
    let state_channel = index
        .channels
        .values()
        .find(|c| c.topic.ends_with(&format!("/{}", keys::STATE)))
        .unwrap()
        .id;
    let last = index
        .chunk_indexes
        .iter()
        .rfind(|c| c.message_index_offsets.contains_key(&state_channel))
        .unwrap();
    let cut = (last.chunk_start_offset + last.chunk_length / 2) as usize;
    std::fs::write(&path, &bytes[..cut]).unwrap();
    let fast = ReplayOptions {
        speed: 50.0,
        ..Default::default()
    };
    let r = replay(&player, &path, &fast, &stop, &mut |_, _| {}).unwrap();
    assert!(r.cut_short);
    assert!(r.messages.get(keys::STATE).copied().unwrap_or(0) < recorded);
    std::fs::remove_dir_all(&dir).unwrap();
}
