//! `loho bench bus`: one RGB-D frame between two processes of one host: through loho's
//! frame ring (the default), zenoh's shared memory and loopback TCP, against the same
//! bytes through an in-process channel. Every cross-process frame is followed by one
//! in-process frame, so each leg's ratio compares runs of the same seconds (on this VM the
//! in-process leg alone moved between 0.056 and 0.181 ms from one run to the next).

use std::time::Duration;

use anyhow::{Context, Result};
use loho_sim::{Env, Split};
use serde::Serialize;

use super::{tail, Tail};

#[derive(Debug, Serialize)]
pub struct BusBench {
    pub frames: usize,
    pub bytes_per_frame: usize,
    /// Publish → receipt in another process (colour then depth) as `loho run --graph
    /// processes` sends frames: through the publisher's ring ([`loho_runtime::ring`]).
    pub ring: Tail,
    /// Of the ring leg's images (two a frame, warm-up included), how many the child read
    /// from the ring.
    pub ring_images: u64,
    /// The same through zenoh's shared memory (rings off).
    pub zenoh_shared_memory: Tail,
    /// Of that leg's images, how many the child read in place from shared memory.
    pub shared_memory_images: u64,
    /// The same over loopback TCP, shared memory off at both ends.
    pub zenoh_tcp: Tail,
    /// An 8×4 frame (328 bytes, under the shared-memory threshold) across processes: the
    /// floor of any frame over zenoh on this host.
    pub zenoh_tiny_frame: Tail,
    /// Send → receipt of the same bytes through a std channel to another thread, all
    /// legs' in-process frames together.
    pub in_process_channel: Tail,
    /// The in-process leg alone, before this process opened any zenoh session, beside
    /// the interleaved frames the ratios below are taken against (measured here: within
    /// ±20 % of them, either side).
    pub in_process_first: Tail,
    /// Each leg's median over the median of the in-process frames between its frames.
    pub ring_ratio_p50: f64,
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
/// images so far came through a ring or zenoh's shared memory.
pub fn bus_echo(endpoint: &str, shared_memory: bool, ring: bool) -> Result<()> {
    use loho_core::msg::{Header, Image, Time};
    warm_heap();
    let bus = loho_runtime::Bus::open(&loho_runtime::BusConfig {
        connect: vec![endpoint.into()],
        shared_memory,
        ring,
        ..Default::default()
    })?;
    let ack = bus.publisher::<Header>(PONG, loho_runtime::Qos::Command)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let sub = bus.subscribe::<Image, _>(PING, move |m| {
        let t = loho_core::clock::wall_ns();
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
            frame_id: (sub.shared_memory_received() + sub.ring_received()).to_string(),
        })?;
    }
    Ok(())
}

/// One 320×160 RGB-D frame (a colour and a depth image, as the sim sends them) between
/// this process and a child over loopback zenoh, against the same bytes through an
/// in-process channel, `frames` times each.
pub fn bus(frames: usize) -> Result<BusBench> {
    use loho_core::msg::{Header, Image, Message};
    use loho_sim::camera::{HEIGHT, WIDTH};
    warm_heap();
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
    let local = Local::start();
    let first = (0..frames)
        .map(|k| {
            let t = local.frame(&make(k));
            std::thread::sleep(GAP);
            t
        })
        .collect::<Result<Vec<_>>>()?;
    let (ring, ring_images, ring_local) = measure_link(frames, &make, Link::Ring, &local)?;
    let (shm, shared_memory_images, shm_local) =
        measure_link(frames, &make, Link::SharedMemory, &local)?;
    let (tcp, _, tcp_local) = measure_link(frames, &make, Link::Tcp, &local)?;
    // The same two messages, 8×4 pixels: what zenoh's wake-ups across processes cost alone.
    let tiny = |k: usize| {
        let header = Header::new(k as f64, "world");
        (
            Image::rgb8(header.clone(), 8, 4, hm.rgb_bytes()[..96].to_vec()),
            Image::f32c1(header, 8, 4, &hm.height[..32]),
        )
    };
    let (floor, _, _) = measure_link(frames, &tiny, Link::SharedMemory, &local)?;
    let ratio = |leg: &Tail, local: &[f64]| leg.p50_ms / tail(local.to_vec()).p50_ms;
    Ok(BusBench {
        frames,
        bytes_per_frame: bytes,
        ring_ratio_p50: ratio(&ring, &ring_local),
        shared_memory_ratio_p50: ratio(&shm, &shm_local),
        tcp_ratio_p50: ratio(&tcp, &tcp_local),
        ring,
        ring_images,
        zenoh_shared_memory: shm,
        shared_memory_images,
        zenoh_tcp: tcp,
        zenoh_tiny_frame: floor,
        in_process_channel: tail([ring_local, shm_local, tcp_local].concat()),
        in_process_first: tail(first),
    })
}

type Frame = (loho_core::msg::Image, loho_core::msg::Image);

/// Keeps freed image buffers in this process's heap. glibc otherwise hands 150–200 kB
/// blocks back to the kernel on free and faults their pages in again on the next frame,
/// at times and in amounts that depend on what else the process allocated: measured
/// here, that put the in-process frames between the zenoh legs' at 0.19–0.22 ms, against
/// 0.08–0.12 with it. Both
/// processes of the bench set the same, so every leg measures its transport.
fn warm_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes glibc's thresholds; called before the legs allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// The in-process leg: a thread receives each image's encoded bytes and decodes them, as a
/// subscriber would, and answers after the depth image, as the echo process does.
struct Local {
    tx: std::sync::mpsc::Sender<Vec<u8>>,
    back: std::sync::mpsc::Receiver<u64>,
}

impl Local {
    /// The thread ends when `Local` is dropped.
    fn start() -> Self {
        use loho_core::msg::{Image, Message};
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let (back_tx, back) = std::sync::mpsc::channel::<u64>();
        std::thread::spawn(move || {
            for bytes in rx {
                match Image::decode(&bytes) {
                    Ok(img) if img.encoding == "32FC1" => {
                        let _ = back_tx.send(loho_core::clock::wall_ns());
                    }
                    Ok(_) => {}
                    Err(_) => {
                        let _ = back_tx.send(0);
                    }
                }
            }
        });
        Self { tx, back }
    }

    /// One frame's send → receipt, in ms.
    fn frame(&self, (c, d): &Frame) -> Result<f64> {
        use loho_core::msg::Message;
        let t = loho_core::clock::wall_ns();
        self.tx.send(c.encode())?;
        self.tx.send(d.encode())?;
        let got = self.back.recv()?;
        anyhow::ensure!(got > 0, "an image did not decode");
        Ok(got.saturating_sub(t) as f64 * 1e-6)
    }
}

/// How the frames of one leg travel between the two processes (linked over loopback TCP).
#[derive(Clone, Copy, PartialEq)]
enum Link {
    Ring,
    SharedMemory,
    Tcp,
}

/// `frames` frames from this process to a child that acknowledges each, each followed by
/// the same frame through `local`; the latencies, how many images the child read from a
/// ring or shared memory, and the in-process latencies.
fn measure_link(
    frames: usize,
    make: &dyn Fn(usize) -> Frame,
    link: Link,
    local: &Local,
) -> Result<(Tail, u64, Vec<f64>)> {
    use loho_core::msg::{Header, Image};
    // Across processes: this process listens, the child connects.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let bus = loho_runtime::Bus::open(&loho_runtime::BusConfig {
        listen: vec![endpoint.clone()],
        shared_memory: link != Link::Tcp,
        ring: link == Link::Ring,
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
    match link {
        Link::Ring => {}
        Link::SharedMemory => {
            child.arg("--no-ring");
        }
        Link::Tcp => {
            child.arg("--no-shared-memory");
        }
    }
    let mut child = child.spawn().context("starting the echo process")?;
    let publisher = bus.publisher::<Image>(PING, loho_runtime::Qos::Frames)?;
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
    let (mut remote, mut here) = (Vec::new(), Vec::new());
    let mut shared = 0;
    for k in 0..frames {
        let (c, d) = make(k);
        let t = loho_core::clock::wall_ns();
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
        here.push(local.frame(&make(k))?);
        std::thread::sleep(GAP);
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok((tail(remote), shared, here))
}

pub fn print(r: &BusBench) {
    println!(
        "one RGB-D frame ({} bytes), {} frames, p50 / p99 ms",
        r.bytes_per_frame, r.frames
    );
    for (name, t) in [
        ("two processes, ring (default)", &r.ring),
        (
            "zenoh, two processes, shared memory",
            &r.zenoh_shared_memory,
        ),
        ("zenoh, two processes, loopback TCP", &r.zenoh_tcp),
        ("zenoh, two processes, 8×4 frame", &r.zenoh_tiny_frame),
        ("in-process channel, between frames", &r.in_process_channel),
        ("in-process channel, before zenoh", &r.in_process_first),
    ] {
        println!("{name:<38}{:>9.3}{:>9.3}", t.p50_ms, t.p99_ms);
    }
    println!(
        "across processes / in-process at p50 (each leg against its own in-process frames): \
         ring {:.1}×, shared memory {:.1}×, TCP {:.1}×",
        r.ring_ratio_p50, r.shared_memory_ratio_p50, r.tcp_ratio_p50
    );
    println!(
        "images read from the ring: {} of {}; from shared memory: {} of {}",
        r.ring_images,
        2 * r.frames,
        r.shared_memory_images,
        2 * r.frames
    );
}
