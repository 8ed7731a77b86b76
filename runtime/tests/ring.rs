//! Frames between sessions of one host through rings in shared memory
//! (`loho_runtime::same_host`), and zenoh wherever a ring cannot serve.

use std::sync::{Arc, Mutex};

use loho_core::msg::{Header, Image};
use loho_runtime::bus::Subscription;
use loho_runtime::{keys, Bus, BusConfig, Qos};
use loho_tests::{eventually, free_port};
use zenoh::Wait;

/// A session listening on a free loopback port, its endpoint, and a function opening
/// sessions that connect to it with `ring` on or off.
fn hub() -> (Bus, String, impl Fn(bool) -> Bus) {
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let a = Bus::open(&BusConfig {
        listen: vec![ep.clone()],
        ..Default::default()
    })
    .unwrap();
    let e = ep.clone();
    let peer = move |ring: bool| {
        Bus::open(&BusConfig {
            connect: vec![e.clone()],
            ring,
            ..Default::default()
        })
        .unwrap()
    };
    (a, ep, peer)
}

/// A bare zenoh session of another process of this user, linked to `ep`.
fn mallory(ep: &str) -> zenoh::Session {
    let mut cfg = zenoh::Config::from_json5(loho_runtime::bus::DEFAULT_ZENOH_CONFIG).unwrap();
    cfg.insert_json5("connect/endpoints", &format!("[\"{ep}\"]"))
        .unwrap();
    zenoh::open(cfg).wait().unwrap()
}

type Seen = Arc<Mutex<Vec<Image>>>;

fn watch(bus: &Bus) -> (Seen, Subscription) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let sub = bus
        .subscribe::<Image, _>(keys::COLOR, move |m| {
            if let Ok(m) = m {
                sink.lock().unwrap().push(m)
            }
        })
        .unwrap();
    (seen, sub)
}

/// A camera-sized frame stamped `k`.
fn frame(k: u32) -> Image {
    let px: Vec<u8> = (0..320 * 160 * 3)
        .map(|i| ((i + k as usize) % 251) as u8)
        .collect();
    Image::rgb8(Header::new(k as f64, "cam"), 320, 160, px)
}

fn stamps(seen: &Seen) -> Vec<i32> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|i| i.header.stamp.sec)
        .collect()
}

#[test]
fn frames_take_the_ring_to_this_host_and_zenoh_to_a_session_without_one() {
    let (a, _, peer) = hub();
    let (near, far) = (peer(true), peer(false));
    let (seen_near, sub_near) = watch(&near);
    let (seen_far, sub_far) = watch(&far);
    let frames = a.publisher::<Image>(keys::COLOR, Qos::Frames).unwrap();
    let mut k = 0;
    eventually("the near session reading the ring", || {
        k += 1;
        frames.put(&frame(k)).unwrap();
        sub_near.ring_received() > 0 && !seen_far.lock().unwrap().is_empty()
    });
    // Both ends caught up, then five frames: each arrives once at each, whole.
    eventually("both ends caught up", || {
        let last = |s: &Seen| s.lock().unwrap().last().map(|i| i.header.stamp.sec);
        last(&seen_near) == Some(k as i32) && last(&seen_far) == Some(k as i32)
    });
    let (n_near, n_far, ring_before) = (
        seen_near.lock().unwrap().len(),
        seen_far.lock().unwrap().len(),
        sub_near.ring_received(),
    );
    for j in k + 1..=k + 5 {
        frames.put(&frame(j)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let want: Vec<i32> = (k as i32 + 1..=k as i32 + 5).collect();
    eventually("five more at each end", || {
        seen_near.lock().unwrap().len() >= n_near + 5 && seen_far.lock().unwrap().len() >= n_far + 5
    });
    assert_eq!(stamps(&seen_near)[n_near..], want, "once each, in order");
    assert_eq!(stamps(&seen_far)[n_far..], want);
    for seen in [&seen_near, &seen_far] {
        let seen = seen.lock().unwrap();
        assert!(seen.iter().all(|i| *i == frame(i.header.stamp.sec as u32)));
    }
    assert_eq!(sub_near.ring_received(), ring_before + 5);
    assert_eq!(sub_far.ring_received(), 0);
    assert_eq!(sub_near.decode_errors() + sub_far.decode_errors(), 0);
}

#[test]
fn a_reader_goes_back_to_zenoh_when_its_ring_goes() {
    let (a, _, peer) = hub();
    let b = peer(true);
    let (seen, sub) = watch(&b);
    let frames = a.publisher::<Image>(keys::COLOR, Qos::Frames).unwrap();
    let mut k = 0;
    eventually("the ring", || {
        k += 1;
        frames.put(&frame(k)).unwrap();
        sub.ring_received() > 0
    });
    eventually("the ring's last frame", || {
        stamps(&seen).last() == Some(&(k as i32))
    });
    // The publisher stops (its ring and token go); another, without a ring, takes over.
    drop(frames);
    let plain = a.publisher::<Image>(keys::COLOR, Qos::Stream).unwrap();
    let (ring_before, last_of_ring) = (sub.ring_received(), k as i32);
    eventually("a frame over zenoh again", || {
        k += 1;
        plain.put(&frame(k)).unwrap();
        stamps(&seen).last() > Some(&last_of_ring)
    });
    assert_eq!(sub.ring_received(), ring_before);
}

/// A token announcing a ring that is not there, or not a loho ring, or not the one
/// announced: the subscription stays on zenoh and keeps hearing the publisher.
#[test]
fn a_false_announcement_is_ignored() {
    // zenoh peers do not forward for one another: mallory links to the subscriber.
    let (b, ep, peer) = hub();
    let (seen, sub) = watch(&b);
    let mallory = mallory(&ep);
    // A file of ours under /dev/shm that is not a ring, one that does not exist, and a
    // name that is not a ring's.
    let pid = std::process::id();
    let stray = format!("/dev/shm/loho-ring-{pid}-00000000deadbeef");
    std::fs::write(&stray, [0u8; 4096]).unwrap();
    let host = loho_runtime::ring::host();
    let prefix = format!("loho/{}/@ring/{host}/feed", keys::DEFAULT_ROBOT);
    let mut tokens = vec![];
    for name in [
        format!("loho-ring-{pid}-00000000deadbeef"),
        format!("loho-ring-{pid}-00000000feedf00d"),
        "not-a-ring-zz".into(),
    ] {
        let key = format!("{prefix}/{name}/{}", keys::COLOR);
        tokens.push(mallory.liveliness().declare_token(key).wait().unwrap());
    }
    // Time for the subscriber to hear the tokens and try them, before the frames.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let a = peer(false);
    let frames = a.publisher::<Image>(keys::COLOR, Qos::Stream).unwrap();
    let mut k = 0;
    eventually("frames over zenoh", || {
        k += 1;
        frames.put(&frame(k)).unwrap();
        seen.lock().unwrap().len() >= 3
    });
    assert_eq!(sub.ring_received(), 0);
    assert_eq!(sub.decode_errors(), 0);
    let _ = std::fs::remove_file(stray);
}

/// A ring announced by another process of the user that writes garbage into it: each
/// payload is counted as undecodable, none reaches the subscriber as a message.
#[test]
fn garbage_in_a_ring_is_counted_not_delivered() {
    let (b, ep, _) = hub();
    let (seen, sub) = watch(&b);
    let mallory = mallory(&ep);
    let mut ring = loho_runtime::ring::RingWriter::create(1024).unwrap();
    let key = format!(
        "loho/{}/@ring/{}/{}/{}/{}",
        keys::DEFAULT_ROBOT,
        loho_runtime::ring::host(),
        mallory.zid(),
        ring.id().0,
        keys::COLOR
    );
    let _token = mallory.liveliness().declare_token(key).wait().unwrap();
    let junk: [&[u8]; 3] = [&[0, 1, 0, 0, 9], &[], &[0xff; 700]];
    let mut k = 0;
    eventually("garbage read from the ring", || {
        k += 1;
        ring.write(junk[k % 3]);
        sub.ring_received() >= 3
    });
    assert!(sub.decode_errors() >= 3);
    assert_eq!(sub.decode_errors(), sub.ring_received());
    assert!(seen.lock().unwrap().is_empty());
}
