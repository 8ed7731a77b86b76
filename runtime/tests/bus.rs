//! The typed bus between two zenoh sessions over loopback.

use std::time::Duration;

use loho_core::msg::{Header, Image, StringMsg};
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

#[test]
fn a_client_that_listens_or_has_no_router_and_ros2_under_secure_are_errors() {
    let err = |cfg: BusConfig| Bus::open(&cfg).err().map(|e| e.to_string());
    let listening = err(BusConfig {
        client: true,
        listen: vec!["tcp/127.0.0.1:0".into()],
        connect: vec!["tcp/127.0.0.1:7447".into()],
        ..Default::default()
    });
    assert!(listening.unwrap().contains("does not listen"));
    let alone = err(BusConfig {
        client: true,
        ..Default::default()
    });
    assert!(alone.unwrap().contains("needs a router"));
    let secured = err(BusConfig {
        ros2: Some(loho_runtime::bus::Ros2 {
            domain: 0,
            node: "loho".into(),
        }),
        secure: Some(loho_runtime::secure::Secure {
            dir: "/nonexistent".into(),
            identity: "policy".into(),
        }),
        ..Default::default()
    });
    assert!(secured.unwrap().contains("--ros2 with --secure"));
}

/// A bus that is ROS 2 node `loho` in `domain`.
fn ros2_bus(domain: u32) -> Bus {
    Bus::open(&BusConfig {
        ros2: Some(loho_runtime::bus::Ros2 {
            domain,
            node: "loho".into(),
        }),
        ..Default::default()
    })
    .unwrap()
}

/// Under ROS 2 a topic without a known type has no key: a clear error, not a guess.
#[test]
fn ros2_raw_puts_need_a_typed_topic() {
    let bus = ros2_bus(0);
    assert!(bus.put_bytes("no/such/topic", vec![0, 1, 0, 0]).is_err());
    assert!(bus.put_bytes(keys::STATE, vec![0, 1, 0, 0]).is_ok());
}

/// A recorder's raw subscription names topics as loho does whatever the layout.
#[test]
fn ros2_raw_subscriptions_see_loho_topic_names() {
    let bus = ros2_bus(3);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let _all = bus
        .subscribe_all(move |topic, bytes| sink.lock().unwrap().push((topic.to_string(), bytes)))
        .unwrap();
    let subtask = bus
        .publisher::<StringMsg>(keys::SUBTASK, Qos::Command)
        .unwrap();
    let colour = bus.publisher::<Image>(keys::COLOR, Qos::Stream).unwrap();
    subtask
        .put(&StringMsg {
            data: "pick".into(),
        })
        .unwrap();
    colour.put(&Image::default()).unwrap();
    eventually("both samples", || seen.lock().unwrap().len() == 2);
    let topics: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(topics, [keys::SUBTASK, keys::COLOR]);
}

#[test]
fn frames_go_through_shared_memory_and_over_the_link_where_the_other_end_cannot() {
    for shared_memory in [true, false] {
        let ep = format!("tcp/127.0.0.1:{}", loho_tests::free_port());
        let open = |listen: bool| {
            Bus::open(&BusConfig {
                listen: if listen { vec![ep.clone()] } else { vec![] },
                connect: if listen { vec![] } else { vec![ep.clone()] },
                // The publisher always offers it; the subscriber's end decides, as a
                // process on another host (that cannot map the segment) would.
                shared_memory: listen || shared_memory,
                ..Default::default()
            })
            .unwrap()
        };
        let (a, b) = (open(true), open(false));
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = got.clone();
        let sub = b
            .subscribe::<Image, _>(keys::COLOR, move |m| sink.lock().unwrap().push(m.unwrap()))
            .unwrap();
        let frames = a.publisher::<Image>(keys::COLOR, Qos::Stream).unwrap();
        // A camera frame (above the 3 kB threshold) and a thumbnail (below it).
        let big: Vec<u8> = (0..320 * 160 * 3).map(|i| (i % 251) as u8).collect();
        let frame = Image::rgb8(Header::new(1.0, "cam"), 320, 160, big);
        let thumb = Image::rgb8(Header::new(2.0, "cam"), 2, 2, vec![7; 12]);
        eventually("a frame", || {
            frames.put(&frame).unwrap();
            !got.lock().unwrap().is_empty()
        });
        // The link's first frames may go out before the two ends agreed on shared memory,
        // and on a loaded machine the agreement can take a while: with it on, frames
        // until one comes through it. Then five more, the last one marked; one
        // publisher's frames arrive in order, so when it is in, every frame is.
        if shared_memory {
            eventually("a frame through shared memory", || {
                frames.put(&frame).unwrap();
                sub.shared_memory_received() > 0
            });
        }
        let start = sub.shared_memory_received();
        for k in 0..5 {
            let id = if k == 4 { "cam-last" } else { "cam" };
            frames
                .put(&Image {
                    header: Header::new(1.0, id),
                    ..frame.clone()
                })
                .unwrap();
        }
        eventually("five more", || {
            got.lock()
                .unwrap()
                .last()
                .map(|i| i.header.frame_id.clone())
                == Some("cam-last".into())
        });
        let before = sub.shared_memory_received();
        frames.put(&thumb).unwrap();
        eventually("the thumbnail", || {
            got.lock().unwrap().last().map(|i| i.width) == Some(2)
        });
        let got = got.lock().unwrap();
        assert!(got[..got.len() - 1]
            .iter()
            .all(|i| i.data == frame.data && i.width == frame.width));
        assert_eq!(*got.last().unwrap(), thumb);
        // The last five frames through shared memory when on; none when off; never the
        // thumbnail.
        if shared_memory {
            assert!(before - start >= 5, "{} of the last 5", before - start);
        } else {
            assert_eq!(before, 0);
        }
        assert_eq!(sub.shared_memory_received(), before);
    }
}
