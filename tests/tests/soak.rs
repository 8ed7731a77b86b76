//! The soak: while an oracle episode runs through the nodes (lockstep, so its result is
//! the machine's load's to change, not the bus's), a foreign session sends random and
//! mutated payloads that do not decode on every key of the robot. Nothing panics, the
//! arm moves only as the episode moves it, and the result is that of the same episode
//! run without them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loho::nodes::{episode, ArmPath};
use loho_runtime::clock::ClockSource;
use loho_runtime::config::RuntimeConfig;
use loho_runtime::msg::*;
use loho_runtime::record::{topic_type, TOPICS};
use loho_runtime::{keys, Bus, BusConfig};
use loho_sim::node::SimConfig;
use loho_sim::{EpisodeResult, Oracle, Split, TaskId};
use loho_tests::fuzz::{mutate, Rng};
use loho_tests::{free_port, log};

fn run(episode_k: u64, garbage: bool) -> (EpisodeResult, u64, usize) {
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let bus = Bus::open(&BusConfig {
        listen: vec![ep.clone()],
        ..Default::default()
    })
    .unwrap();
    let sim = SimConfig {
        task: TaskId::B,
        split: Split::Val,
        seed: Split::Val.seed(episode_k),
        fps: 10.0,
        clock: ClockSource::Sim,
        runtime: RuntimeConfig::default(),
        exit_when_done: true,
        cameras: None,
    };
    let (diags, _d) = log::<DiagnosticArray>(&bus, keys::DIAGNOSTICS);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let foreign = garbage.then(|| {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mallory = Bus::open(&BusConfig {
                connect: vec![ep],
                ..Default::default()
            })
            .unwrap();
            let mut rng = Rng::new(7);
            // The e-stop is left out: an unreadable e-stop is an e-stop, by design
            // (tests/nodes.rs), so it would end the episode.
            let topics: Vec<(&str, &str)> = TOPICS
                .iter()
                .copied()
                .filter(|(t, _)| *t != keys::ESTOP)
                .chain([("camera/top/color", Image::TYPE_NAME)])
                .collect();
            while !stop.load(Ordering::Relaxed) {
                let (topic, ty) = topics[rng.below(topics.len())];
                let bytes = mutate(&[seed(ty)], &mut rng);
                if decodes(ty, &bytes) {
                    continue;
                }
                mallory.put_bytes(topic, bytes).unwrap();
                sent.fetch_add(1, Ordering::Relaxed);
                // ~5 000 a second: a flood, but one that leaves the nodes their cores (on 2
                // cores, an unthrottled one starved them past the controller's wall-clock
                // peer timeout, which lockstep keeps).
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    });
    let r = episode(
        &bus,
        &sim,
        &ArmPath::Direct,
        Box::new(Oracle),
        None,
        Duration::from_secs(300),
    )
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    if let Some(f) = foreign {
        f.join().unwrap();
    }
    let undecodable = diags
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, d)| {
            d.status
                .iter()
                .any(|s| s.message.starts_with("undecodable"))
        })
        .count();
    (r, sent.load(Ordering::Relaxed), undecodable)
}

/// A valid encoding of a topic's type, the seed of its mutations.
fn seed(ty: &str) -> Vec<u8> {
    match ty {
        t if t == Image::TYPE_NAME => {
            Image::rgb8(Header::new(1.0, "world"), 2, 1, vec![9; 6]).encode()
        }
        t if t == ActionChunk::TYPE_NAME => ActionChunk {
            keyposes: vec![Keypose::default(); 2],
            ..Default::default()
        }
        .encode(),
        t if t == DiagnosticArray::TYPE_NAME => {
            DiagnosticArray::report(1.0, 1, "x", "y", "z").encode()
        }
        t if t == ArmState::TYPE_NAME => ArmState::default().encode(),
        t if t == EeCommand::TYPE_NAME => EeCommand::default().encode(),
        t if t == ExecStatus::TYPE_NAME => ExecStatus::default().encode(),
        t if t == EpisodeEvent::TYPE_NAME => EpisodeEvent::default().encode(),
        t if t == HeightmapInfo::TYPE_NAME => HeightmapInfo::default().encode(),
        t if t == Clock::TYPE_NAME => Clock::default().encode(),
        _ => StringMsg { data: "x".into() }.encode(),
    }
}

/// Whether `bytes` decode as `ty` (those are well-formed messages, not garbage).
fn decodes(ty: &str, bytes: &[u8]) -> bool {
    fn ok<T: Message>(b: &[u8]) -> bool {
        T::decode(b).is_ok()
    }
    match ty {
        t if t == Image::TYPE_NAME => ok::<Image>(bytes),
        t if t == ActionChunk::TYPE_NAME => ok::<ActionChunk>(bytes),
        t if t == DiagnosticArray::TYPE_NAME => ok::<DiagnosticArray>(bytes),
        t if t == ArmState::TYPE_NAME => ok::<ArmState>(bytes),
        t if t == EeCommand::TYPE_NAME => ok::<EeCommand>(bytes),
        t if t == ExecStatus::TYPE_NAME => ok::<ExecStatus>(bytes),
        t if t == EpisodeEvent::TYPE_NAME => ok::<EpisodeEvent>(bytes),
        t if t == HeightmapInfo::TYPE_NAME => ok::<HeightmapInfo>(bytes),
        t if t == Clock::TYPE_NAME => ok::<Clock>(bytes),
        t if t == BoolMsg::TYPE_NAME => ok::<BoolMsg>(bytes),
        _ => ok::<StringMsg>(bytes),
    }
}

#[test]
fn garbage_on_every_key_during_an_episode_changes_nothing() {
    assert!(TOPICS.iter().all(|(t, _)| topic_type(t).is_some()));
    let mut total = 0;
    for k in 0..3 {
        let (quiet, _, _) = run(k, false);
        let (soaked, sent, undecodable) = run(k, true);
        eprintln!("soak, episode {k}: {sent} undecodable payloads, {undecodable} diagnosed");
        assert!(sent > 100, "{sent}");
        assert!(
            undecodable > 0,
            "the nodes said nothing about {sent} bad payloads"
        );
        let outcome = |r: &EpisodeResult| (r.steps, r.success, r.total_reward, r.subtasks.clone());
        assert_eq!(outcome(&soaked), outcome(&quiet));
        assert!(quiet.success, "{quiet:?}");
        total += sent;
    }
    eprintln!("soak: {total} undecodable payloads over 3 episodes");
}
