//! The typed bus between two zenoh sessions over loopback.

use std::time::Duration;

use loho_runtime::msg::{Header, Image, StringMsg};
use loho_runtime::{keys, Bus, BusConfig, Qos};
use loho_tests::eventually;

#[test]
fn typed_messages_latest_value_garbage_and_liveliness() {
    let (a, b) = Bus::loopback_pair().unwrap();
    let latest = b.latest::<Image>(keys::COLOR).unwrap();
    let text = b.latest::<StringMsg>(keys::INSTRUCTION).unwrap();
    let frames = a.publisher::<Image>(keys::COLOR, Qos::Stream).unwrap();
    let instr = a
        .publisher::<StringMsg>(keys::INSTRUCTION, Qos::Command)
        .unwrap();

    // Keep publishing until the route is up; the slot ends up with the newest frame.
    let mut n = 0u32;
    eventually("a frame", || {
        n += 1;
        let img = Image::rgb8(Header::new(n as f64, "world"), 1, 1, vec![n as u8, 0, 0]);
        frames.put(&img).unwrap();
        latest.get().is_some()
    });
    for k in 1..=5u32 {
        let img = Image::rgb8(Header::new((n + k) as f64, "world"), 1, 1, vec![0, 0, 0]);
        frames.put(&img).unwrap();
    }
    eventually("the newest frame", || {
        latest.get().map(|i| i.header.stamp.sec as u32) == Some(n + 5)
    });

    instr
        .put(&StringMsg {
            data: "stack the blocks.".into(),
        })
        .unwrap();
    eventually("the instruction", || {
        text.get().map(|s| s.data) == Some("stack the blocks.".into())
    });

    // Garbage is counted, never delivered, and does not replace the good value.
    a.put_bytes(keys::COLOR, vec![0, 1, 0, 0, 9]).unwrap();
    eventually("a decode error", || latest.decode_errors() >= 1);
    assert_eq!(latest.get().unwrap().header.stamp.sec as u32, n + 5);

    // Liveliness: seen while the token lives, gone after it is dropped.
    let token = a.alive("sim").unwrap();
    eventually("the token", || {
        b.is_alive("sim", Duration::from_secs(2)).unwrap()
    });
    drop(token);
    eventually("the token to go", || {
        !b.is_alive("sim", Duration::from_secs(1)).unwrap()
    });
    assert_eq!(b.robot(), keys::DEFAULT_ROBOT);
}

#[test]
fn bad_endpoint_is_an_error() {
    let e = Bus::open(&BusConfig {
        listen: vec!["127.0.0.1:7447".into()],
        ..Default::default()
    });
    assert!(e.is_err());
}
