//! The soak: while an oracle episode runs through the nodes (lockstep, so its result is
//! the machine's load's to change, not the bus's), a foreign session sends random and
//! mutated payloads that do not decode on every key of the robot. Nothing panics, the
//! arm moves only as the episode moves it, and the result is that of the same episode
//! run without them.
//!
//! Known and open (2026-12-01): garbage from before the nodes are up stalled 4 of 10
//! episodes and changed 1; at ~5 000 payloads a second from the first chunk on, 2 of 10
//! repeated the first sub-task. The nodes' unthrottled diagnostics (one per bad payload)
//! and the controller's wall-clock timeouts under lockstep are the suspects.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loho::nodes::{episode, ArmPath};
use loho_runtime::clock::ClockSource;
use loho_runtime::config::RuntimeConfig;
use loho_runtime::msg::*;
use loho_runtime::record::TOPICS;
use loho_runtime::{keys, Bus, BusConfig};
use loho_sim::node::SimConfig;
use loho_sim::{EpisodeResult, Oracle, Split, TaskId};
use loho_tests::fuzz::{mutate, Rng};
use loho_tests::{free_port, log, wait_for};

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
        let mallory = Bus::open(&BusConfig {
            connect: vec![ep],
            ..Default::default()
        })
        .unwrap();
        // Linked before the episode starts (a short episode could end before a link
        // formed late: CI once saw an episode end with nothing sent), and sending from the
        // first chunk's start to the end (garbage while the nodes start up is an open bug:
        // the module's doc).
        let _here = bus.alive("soak").unwrap();
        wait_for(
            "the foreign session's link",
            Duration::from_secs(30),
            || {
                mallory
                    .is_alive("soak", Duration::from_millis(200))
                    .unwrap()
                    .then_some(())
            },
        );
        let status = mallory.latest::<ExecStatus>(keys::EXEC_STATUS).unwrap();
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            while status.get().is_none() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut rng = Rng::new(7);
            let targets = targets();
            while !stop.load(Ordering::Relaxed) {
                let (topic, seed, decodes) = &targets[rng.below(targets.len())];
                let bytes = mutate(std::slice::from_ref(seed), &mut rng);
                if decodes(&bytes) {
                    continue;
                }
                mallory.put_bytes(topic, bytes).unwrap();
                sent.fetch_add(1, Ordering::Relaxed);
                // ~1 000 a second over the whole episode. At ~5 000 a second (one core's
                // worth on CI's two) 2 of 10 episodes took one step more: an open bug.
                std::thread::sleep(Duration::from_millis(1));
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

/// A topic, a valid encoding of its type (the seed of its mutations) and whether bytes
/// decode as that type (those are well-formed messages, not garbage).
type Target = (&'static str, Vec<u8>, fn(&[u8]) -> bool);

/// Every topic but `estop`: an unreadable e-stop is an e-stop, by design (tests/nodes.rs),
/// so it would end the episode.
fn targets() -> Vec<Target> {
    fn of<T: Message>(topic: &'static str, seed: T) -> Target {
        (topic, seed.encode(), |b| T::decode(b).is_ok())
    }
    let image = Image::rgb8(Header::new(1.0, "world"), 2, 1, vec![9; 6]);
    let text = StringMsg { data: "x".into() };
    vec![
        of(keys::COLOR, image.clone()),
        of(keys::DEPTH, image),
        of(keys::INFO, HeightmapInfo::default()),
        of(keys::STATE, ArmState::default()),
        of(keys::INSTRUCTION, text.clone()),
        of(keys::SUBTASK, text),
        of(
            keys::ACTION,
            ActionChunk {
                keyposes: vec![Keypose::default(); 2],
                ..Default::default()
            },
        ),
        of(keys::CMD_EE, EeCommand::default()),
        of(keys::EXEC_STATUS, ExecStatus::default()),
        of(keys::EPISODE, EpisodeEvent::default()),
        of(
            keys::DIAGNOSTICS,
            DiagnosticArray::report(1.0, 1, "x", "y", "z"),
        ),
        of(keys::CLOCK, Clock::default()),
    ]
}

#[test]
fn garbage_on_every_key_during_an_episode_changes_nothing() {
    // Every topic a recording knows, each seed a valid message of its decoder's type.
    let targets = targets();
    for (topic, _) in TOPICS.iter().filter(|(t, _)| *t != keys::ESTOP) {
        let target = targets.iter().find(|(t, _, _)| t == topic);
        assert!(
            target.is_some_and(|(_, seed, decodes)| decodes(seed)),
            "{topic}"
        );
    }
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
