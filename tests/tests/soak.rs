//! The soak: while an oracle episode runs through the nodes (lockstep, so its result is
//! the machine's load's to change, not the bus's), a foreign session sends random and
//! mutated payloads that do not decode on every key of the robot, as fast as one thread
//! can, from before the nodes start until the episode is over. Nothing panics, the arm
//! moves only as the episode moves it, and the result is that of the same episode run
//! without them.
//!
//! This found two bugs (2026-12-01), both fixed: the simulator repeated its first frame
//! and clock only after a quiet spell, which bad payloads on `exec/status` never left it
//! (the policy waited ~10 s for a frame, the controller gave a chunk up for "no sim
//! clock"); and zenoh raced two threads declaring the same key on one session
//! (`Bus::declare`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loho::wiring::{episode, ArmPath};
use loho_core::clock::ClockSource;
use loho_core::config::RuntimeConfig;
use loho_core::msg::*;
use loho_runtime::keys::TOPICS;
use loho_runtime::{keys, Bus, BusConfig};
use loho_sim::node::SimConfig;
use loho_sim::{EpisodeResult, Oracle, Split, TaskId};
use loho_tests::fuzz::{mutate, Rng};
use loho_tests::{free_port, log, wait_for};

/// Task B's val episodes soaked, each against the same episode run quietly.
const EPISODES: u64 = 5;

/// One episode's end, and what the foreign session did to it.
struct Soaked {
    result: EpisodeResult,
    /// Bad payloads the foreign session put (its own queue drops some under load).
    sent: u64,
    /// Bad payloads that reached the nodes' session.
    delivered: u64,
    /// Diagnostics the nodes sent about payloads they could not decode.
    diagnosed: usize,
}

fn run(episode_k: u64, garbage: bool) -> Soaked {
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let bus = Bus::open(&BusConfig {
        listen: vec![ep.clone()],
        ..Default::default()
    })
    .unwrap();
    let sim = SimConfig {
        draw: Default::default(),
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
    let delivered = Arc::new(AtomicU64::new(0));
    let count = delivered.clone();
    let known = targets();
    let _all = bus
        .subscribe_all(move |topic, bytes| {
            if known
                .iter()
                .any(|(t, _, decodes)| *t == topic && !decodes(&bytes))
            {
                count.fetch_add(1, Ordering::Relaxed);
            }
        })
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let foreign = garbage.then(|| {
        let mallory = Bus::open(&BusConfig {
            connect: vec![ep],
            ..Default::default()
        })
        .unwrap();
        // Linked before the episode starts: garbage meets the nodes as they start up.
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
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
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
    let diagnosed = diags
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, d)| {
            d.status
                .iter()
                .any(|s| s.message.starts_with("undecodable"))
        })
        .count();
    Soaked {
        result: r,
        sent: sent.load(Ordering::Relaxed),
        delivered: delivered.load(Ordering::Relaxed),
        diagnosed,
    }
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
    let (mut sent, mut delivered) = (0, 0);
    for k in 0..EPISODES {
        let quiet = run(k, false).result;
        let soaked = run(k, true);
        eprintln!(
            "soak, episode {k}: {} bad payloads sent, {} reached the nodes, {} diagnosed",
            soaked.sent, soaked.delivered, soaked.diagnosed
        );
        assert!(soaked.delivered > 100, "{}", soaked.delivered);
        assert!(
            soaked.diagnosed > 0,
            "the nodes said nothing about {} bad payloads",
            soaked.delivered
        );
        let outcome = |r: &EpisodeResult| (r.steps, r.success, r.total_reward, r.subtasks.clone());
        assert_eq!(outcome(&soaked.result), outcome(&quiet));
        assert!(quiet.success, "{quiet:?}");
        sent += soaked.sent;
        delivered += soaked.delivered;
    }
    eprintln!(
        "soak: {sent} bad payloads sent, {delivered} reached the nodes, over {EPISODES} episodes"
    );
}
