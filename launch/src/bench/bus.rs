//! `loho bench bus`: one RGB-D frame between two processes over loopback zenoh, against
//! the same bytes through an in-process channel.

use std::time::Duration;

use anyhow::{Context, Result};
use loho_sim::{Env, Split};
use serde::Serialize;

use super::{tail, Tail};

#[derive(Debug, Serialize)]
pub struct BusBench {
    pub frames: usize,
    pub bytes_per_frame: usize,
    /// Publish → receipt in another process over loopback TCP (colour then depth).
    pub zenoh_processes: Tail,
    /// Send → receipt of the same bytes through a std channel to another thread.
    pub in_process_channel: Tail,
    /// Median over median.
    pub ratio_p50: f64,
}

const PING: &str = "bench/frame";
const PONG: &str = "bench/ack";

/// The other end of `bench bus`: acknowledges every depth image with the time it
/// arrived (both processes read the same system clock).
pub fn bus_echo(endpoint: &str) -> Result<()> {
    use loho_runtime::msg::{Image, Time};
    let bus = loho_runtime::Bus::open(&loho_runtime::BusConfig {
        connect: vec![endpoint.into()],
        ..Default::default()
    })?;
    let ack = bus.publisher::<Time>(PONG, loho_runtime::Qos::Command)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let _sub = bus.subscribe::<Image, _>(PING, move |m| {
        let t = loho_runtime::clock::wall_ns();
        if let Ok(img) = m {
            if img.encoding == "32FC1" {
                let _ = tx.send(t);
            }
        }
    })?;
    for t in rx {
        ack.put(&Time {
            sec: (t / 1_000_000_000) as i32,
            nanosec: (t % 1_000_000_000) as u32,
        })?;
    }
    Ok(())
}

/// One 320×160 RGB-D frame (a colour and a depth image, as the sim sends them) between
/// this process and a child over loopback zenoh, against the same bytes through an
/// in-process channel, `frames` times each.
pub fn bus(frames: usize) -> Result<BusBench> {
    use loho_runtime::msg::{Header, Image, Message, Time};
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

    // In process: a thread receives the encoded bytes and decodes them, as a subscriber would.
    let (tx, rx) = std::sync::mpsc::channel::<(u64, Vec<u8>, Vec<u8>)>();
    let (back_tx, back_rx) = std::sync::mpsc::channel::<u64>();
    let worker = std::thread::spawn(move || {
        for (_, a, b) in rx {
            let ok = Image::decode(&a).is_ok() && Image::decode(&b).is_ok();
            let _ = back_tx.send(if ok {
                loho_runtime::clock::wall_ns()
            } else {
                0
            });
        }
    });
    let mut local = Vec::new();
    for k in 0..frames {
        let (c, d) = make(k);
        let t = loho_runtime::clock::wall_ns();
        tx.send((t, c.encode(), d.encode()))?;
        let got = back_rx.recv()?;
        local.push((got.saturating_sub(t)) as f64 * 1e-6);
    }
    drop(tx);
    let _ = worker.join();

    // Across processes: this process listens, the child connects.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let bus = loho_runtime::Bus::open(&loho_runtime::BusConfig {
        listen: vec![endpoint.clone()],
        ..Default::default()
    })?;
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<u64>();
    let _acks = bus.subscribe::<Time, _>(PONG, move |m| {
        if let Ok(t) = m {
            let _ = ack_tx.send(t.sec as u64 * 1_000_000_000 + t.nanosec as u64);
        }
    })?;
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args(["bench", "bus-echo", "--connect", &endpoint])
        .spawn()
        .context("starting the echo process")?;
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
    for k in 0..frames {
        let (c, d) = make(k);
        let t = loho_runtime::clock::wall_ns();
        publisher.put(&c)?;
        publisher.put(&d)?;
        match ack_rx.recv_timeout(Duration::from_secs(2)) {
            Ok(got) => remote.push(got.saturating_sub(t) as f64 * 1e-6),
            Err(_) => tracing::warn!("frame {k} lost"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let remote = tail(remote);
    let local = tail(local);
    Ok(BusBench {
        frames,
        bytes_per_frame: bytes,
        ratio_p50: remote.p50_ms / local.p50_ms,
        zenoh_processes: remote,
        in_process_channel: local,
    })
}

pub fn print(r: &BusBench) {
    println!(
        "one RGB-D frame ({} bytes), {} frames, p50 / p99 ms",
        r.bytes_per_frame, r.frames
    );
    for (name, t) in [
        ("zenoh, two processes, loopback", &r.zenoh_processes),
        ("in-process channel", &r.in_process_channel),
    ] {
        println!("{name:<34}{:>9.3}{:>9.3}", t.p50_ms, t.p99_ms);
    }
    println!(
        "zenoh across processes / in-process at p50: {:.1}×",
        r.ratio_p50
    );
}
