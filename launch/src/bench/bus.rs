//! `loho bench bus`: one RGB-D frame between two processes over zenoh, through shared
//! memory and over loopback TCP, against the same bytes through an in-process channel.

use std::time::Duration;

use anyhow::{Context, Result};
use loho_sim::{Env, Split};
use serde::Serialize;

use super::{tail, Tail};

#[derive(Debug, Serialize)]
pub struct BusBench {
    pub frames: usize,
    pub bytes_per_frame: usize,
    /// Publish → receipt in another process, the frame through shared memory (colour
    /// then depth).
    pub zenoh_shared_memory: Tail,
    /// Of the shared-memory leg's images (two a frame, warm-up included), how many the
    /// child read in place from shared memory.
    pub shared_memory_images: u64,
    /// The same over loopback TCP, shared memory off at both ends.
    pub zenoh_tcp: Tail,
    /// An 8×4 frame (328 bytes, under the shared-memory threshold) across processes: the
    /// floor of any frame over zenoh on this host.
    pub zenoh_tiny_frame: Tail,
    /// Send → receipt of the same bytes through a std channel to another thread.
    pub in_process_channel: Tail,
    /// Medians over the in-process median.
    pub shared_memory_ratio_p50: f64,
    pub tcp_ratio_p50: f64,
}

const PING: &str = "bench/frame";
/// Between two frames in every leg: receivers go back to sleep, as between a camera's
/// frames, and a stream publisher never meets congestion.
const GAP: Duration = Duration::from_millis(5);
const PONG: &str = "bench/ack";

/// The other end of `bench bus`: acknowledges every depth image with the time it
/// arrived (both processes read the same system clock) and, as the frame id, how many
/// images so far came through shared memory.
pub fn bus_echo(endpoint: &str, shared_memory: bool) -> Result<()> {
    use loho_runtime::msg::{Header, Image, Time};
    let bus = loho_runtime::Bus::open(&loho_runtime::BusConfig {
        connect: vec![endpoint.into()],
        shared_memory,
        ..Default::default()
    })?;
    let ack = bus.publisher::<Header>(PONG, loho_runtime::Qos::Command)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let sub = bus.subscribe::<Image, _>(PING, move |m| {
        let t = loho_runtime::clock::wall_ns();
        if let Ok(img) = m {
            if img.encoding == "32FC1" {
                let _ = tx.send(t);
            }
        }
    })?;
    for t in rx {
        ack.put(&Header {
            stamp: Time {
                sec: (t / 1_000_000_000) as i32,
                nanosec: (t % 1_000_000_000) as u32,
            },
            frame_id: sub.shared_memory_received().to_string(),
        })?;
    }
    Ok(())
}

/// One 320×160 RGB-D frame (a colour and a depth image, as the sim sends them) between
/// this process and a child over loopback zenoh, against the same bytes through an
/// in-process channel, `frames` times each.
pub fn bus(frames: usize) -> Result<BusBench> {
    use loho_runtime::msg::{Header, Image, Message};
    use loho_sim::camera::{HEIGHT, WIDTH};
    let env = Env::new(loho_sim::TaskId::B, Split::Test, Split::Test.seed(0))?;
    let hm = env.observe();
    let (w, h) = (WIDTH as u32, HEIGHT as u32);
    let make = |k: usize| {
        let header = Header::new(k as f64, "world");
        (
            Image::rgb8(header.clone(), w, h, hm.rgb_bytes()),
            Image::f32c1(header, w, h, &hm.height),
        )
    };
    let (c, d) = make(0);
    let bytes = c.encode().len() + d.encode().len();

    // In process: a thread receives each image's encoded bytes and decodes them, as a
    // subscriber would, and answers after the depth image, as the echo process does.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let (back_tx, back_rx) = std::sync::mpsc::channel::<u64>();
    let worker = std::thread::spawn(move || {
        for bytes in rx {
            match Image::decode(&bytes) {
                Ok(img) if img.encoding == "32FC1" => {
                    let _ = back_tx.send(loho_runtime::clock::wall_ns());
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = back_tx.send(0);
                }
            }
        }
    });
    let mut local = Vec::new();
    for k in 0..frames {
        let (c, d) = make(k);
        let t = loho_runtime::clock::wall_ns();
        tx.send(c.encode())?;
        tx.send(d.encode())?;
        let got = back_rx.recv()?;
        anyhow::ensure!(got > 0, "an image did not decode");
        local.push((got.saturating_sub(t)) as f64 * 1e-6);
        std::thread::sleep(GAP);
    }
    drop(tx);
    let _ = worker.join();

    let (shm, shared_memory_images) = across(frames, &make, true)?;
    let (tcp, _) = across(frames, &make, false)?;
    // The same two messages, 8×4 pixels: what zenoh's wake-ups across processes cost alone.
    let tiny = |k: usize| {
        let header = Header::new(k as f64, "world");
        (
            Image::rgb8(header.clone(), 8, 4, hm.rgb_bytes()[..96].to_vec()),
            Image::f32c1(header, 8, 4, &hm.height[..32]),
        )
    };
    let (floor, _) = across(frames, &tiny, true)?;
    let local = tail(local);
    Ok(BusBench {
        frames,
        bytes_per_frame: bytes,
        shared_memory_ratio_p50: shm.p50_ms / local.p50_ms,
        tcp_ratio_p50: tcp.p50_ms / local.p50_ms,
        zenoh_shared_memory: shm,
        shared_memory_images,
        zenoh_tcp: tcp,
        zenoh_tiny_frame: floor,
        in_process_channel: local,
    })
}

type Frame = (loho_runtime::msg::Image, loho_runtime::msg::Image);

/// `frames` frames from this process to a child that acknowledges each, over loopback
/// TCP, with both ends' shared memory on or off; the latencies, and how many images the
/// child read from shared memory.
fn across(
    frames: usize,
    make: &dyn Fn(usize) -> Frame,
    shared_memory: bool,
) -> Result<(Tail, u64)> {
    use loho_runtime::msg::{Header, Image};
    // Across processes: this process listens, the child connects.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let bus = loho_runtime::Bus::open(&loho_runtime::BusConfig {
        listen: vec![endpoint.clone()],
        shared_memory,
        ..Default::default()
    })?;
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<(u64, u64)>();
    let _acks = bus.subscribe::<Header, _>(PONG, move |m| {
        if let Ok(h) = m {
            let t = h.stamp.sec as u64 * 1_000_000_000 + h.stamp.nanosec as u64;
            let _ = ack_tx.send((t, h.frame_id.parse().unwrap_or(0)));
        }
    })?;
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe);
    child.args(["bench", "bus-echo", "--connect", &endpoint]);
    if !shared_memory {
        child.arg("--no-shared-memory");
    }
    let mut child = child.spawn().context("starting the echo process")?;
    let publisher = bus.publisher::<Image>(PING, loho_runtime::Qos::Stream)?;
    // Until the child answers: the link and its subscription are up.
    let warm = std::time::Instant::now();
    loop {
        let (c, d) = make(0);
        publisher.put(&c)?;
        publisher.put(&d)?;
        if ack_rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
        anyhow::ensure!(
            warm.elapsed() < Duration::from_secs(30),
            "the echo process never answered"
        );
    }
    while ack_rx.try_recv().is_ok() {}
    let mut remote = Vec::new();
    let mut shared = 0;
    for k in 0..frames {
        let (c, d) = make(k);
        let t = loho_runtime::clock::wall_ns();
        publisher.put(&c)?;
        publisher.put(&d)?;
        match ack_rx.recv_timeout(Duration::from_secs(2)) {
            Ok((got, n)) => {
                remote.push(got.saturating_sub(t) as f64 * 1e-6);
                shared = n;
            }
            Err(_) => tracing::warn!("frame {k} lost"),
        }
        std::thread::sleep(GAP);
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok((tail(remote), shared))
}
pub fn print(r: &BusBench) {
    println!(
        "one RGB-D frame ({} bytes), {} frames, p50 / p99 ms",
        r.bytes_per_frame, r.frames
    );
    for (name, t) in [
        (
            "zenoh, two processes, shared memory",
            &r.zenoh_shared_memory,
        ),
        ("zenoh, two processes, loopback TCP", &r.zenoh_tcp),
        ("zenoh, two processes, 8×4 frame", &r.zenoh_tiny_frame),
        ("in-process channel", &r.in_process_channel),
    ] {
        println!("{name:<38}{:>9.3}{:>9.3}", t.p50_ms, t.p99_ms);
    }
    println!(
        "across processes / in-process at p50: shared memory {:.1}×, TCP {:.1}×",
        r.shared_memory_ratio_p50, r.tcp_ratio_p50
    );
    println!(
        "images read from shared memory: {} of {}",
        r.shared_memory_images,
        2 * r.frames
    );
}
