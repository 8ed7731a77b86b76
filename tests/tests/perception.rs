//! Cameras on the bus: the simulator's three RGB-D cameras fused by the heightmap node
//! over loopback zenoh, recorded to MCAP; and the node's refusals — a frame in the wrong
//! frame, sizes that disagree, a camera that goes silent — each a diagnostic, never a map
//! fused from some of the cameras.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loho_core::clock::ClockSource;
use loho_core::config::RuntimeConfig;
use loho_core::msg::{CameraInfo, DiagnosticArray, Header, HeightmapInfo, Image, Message};
use loho_core::perception::camera::{Intrinsics, Rig as RigConfig};
use loho_core::perception::grid;
use loho_runtime::heightmap as node;
use loho_runtime::keys;
use loho_runtime::record::Recorder;
use loho_runtime::{Bus, BusConfig, Qos};
use loho_sim::node::SimConfig;
use loho_sim::rgbd::Rig;
use loho_sim::{Env, Split, TaskId};
use loho_tests::{eventually, free_port, log, wait_for};

/// A bus for the nodes (listening) and one for the test (connected to it).
fn buses(robot: &str) -> (Bus, Bus) {
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let nodes = Bus::open(&BusConfig {
        robot: robot.into(),
        listen: vec![ep.clone()],
        ..Default::default()
    })
    .unwrap();
    let test = Bus::open(&BusConfig {
        robot: robot.into(),
        connect: vec![ep],
        ..Default::default()
    })
    .unwrap();
    (nodes, test)
}

/// Runs `f` on a thread until the returned flag is set.
fn spawn(f: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || f(s));
    stop
}

#[test]
fn the_simulators_cameras_fused_by_the_node_are_the_ideal_heightmap() {
    let (nodes, test) = buses("cams");
    let (task, seed) = (TaskId::B, Split::Val.seed(2));
    let cfg = SimConfig {
        draw: Default::default(),
        task,
        split: Split::Val,
        seed,
        fps: 5.0,
        clock: ClockSource::Sim,
        runtime: Default::default(),
        exit_when_done: false,
        cameras: Some(Rig::benchmark()),
    };
    let (b, c) = (nodes.clone(), cfg.clone());
    let stop_sim = spawn(move |s| {
        loho_sim::node::run(&b, &c, loho_sim::node::stage(&c).unwrap(), s).unwrap();
    });
    let b = nodes.clone();
    let stop_fuse = spawn(move |s| {
        node::run(&b, RigConfig::benchmark(), &RuntimeConfig::default(), s).unwrap()
    });
    let rec_path = std::env::temp_dir().join(format!("loho-cams-{}.mcap", std::process::id()));
    let rec = Recorder::start(&test, &rec_path, &[]).unwrap();
    let depth = test.latest::<Image>(keys::DEPTH).unwrap();
    let color = test.latest::<Image>(keys::COLOR).unwrap();
    let info = test.latest::<HeightmapInfo>(keys::INFO).unwrap();
    let (depth, color, info) = wait_for("a fused heightmap", Duration::from_secs(30), || {
        Some((depth.get()?, color.get()?, info.get()?))
    });
    let ideal = Env::new(task, Split::Val, seed).unwrap().observe();
    let fused = depth.to_f32().unwrap();
    let objects: Vec<usize> = (0..fused.len())
        .filter(|&k| ideal.height[k] > 0.01)
        .collect();
    let close = objects
        .iter()
        .filter(|&&k| (fused[k] - ideal.height[k]).abs() < 0.01)
        .count();
    assert!(
        close as f64 > 0.99 * objects.len() as f64,
        "{close} of {}",
        objects.len()
    );
    assert_eq!(color.data.len(), grid::WIDTH * grid::HEIGHT * 3);
    // The map carries its source frames' stamp (the scene's time) and the ideal map's info.
    assert_eq!(depth.header.stamp, color.header.stamp);
    assert_eq!(info, loho_sim::camera::grid().info(depth.header.clone()));
    std::thread::sleep(Duration::from_millis(500));
    let summary = rec.finish().unwrap();
    stop_sim.store(true, Ordering::Relaxed);
    stop_fuse.store(true, Ordering::Relaxed);
    for t in [
        "camera/front/color",
        "camera/left/depth",
        "camera/right/info",
        "camera/top/depth",
    ] {
        assert!(
            summary.messages.get(t).is_some_and(|&n| n > 0),
            "{t}: {summary:?}"
        );
    }
    // In the file, each camera's info is a CameraInfo with its ROS 2 schema.
    let bytes = std::fs::read(&rec_path).unwrap();
    let _ = std::fs::remove_file(&rec_path);
    let m = mcap::MessageStream::new(&bytes)
        .unwrap()
        .map(|m| m.unwrap())
        .find(|m| m.channel.topic == "/loho/cams/camera/front/info")
        .expect("front camera info recorded");
    let schema = m.channel.schema.as_ref().unwrap();
    assert_eq!(schema.name, "sensor_msgs/msg/CameraInfo");
    assert!(String::from_utf8_lossy(&schema.data).contains("MSG: sensor_msgs/RegionOfInterest"));
    let ci = CameraInfo::decode(&m.data).unwrap();
    assert_eq!(
        (ci.width, ci.height, ci.header.frame_id.as_str()),
        (640, 480, "front_color_optical_frame")
    );
}

/// A small camera's frame: colour, depth and info at `stamp` in `frame`.
fn frame(stamp: f64, frame: &str, depth_rows: u32) -> (Image, Image, CameraInfo) {
    let h = Header::new(stamp, frame);
    let model = Intrinsics {
        width: 32,
        height: 24,
        fx: 30.0,
        fy: 30.0,
        cx: 16.0,
        cy: 12.0,
        distortion: [0.0; 8],
    };
    (
        Image::rgb8(h.clone(), 32, 24, vec![51; 32 * 24 * 3]),
        Image::u16c1(
            h.clone(),
            32,
            depth_rows,
            &vec![1000; 32 * depth_rows as usize],
        ),
        model.info(h),
    )
}

#[test]
fn wrong_frames_and_sizes_are_refused_and_a_silent_camera_holds_the_map() {
    let (nodes, test) = buses("refuse");
    let mut rig = RigConfig::benchmark().clone();
    rig.cameras.truncate(2);
    rig.fusion.stale_s = 0.5;
    let b = nodes.clone();
    let r = rig.clone();
    let stop = spawn(move |s| node::run(&b, &r, &RuntimeConfig::default(), s).unwrap());
    let (maps, _m) = log::<Image>(&test, keys::DEPTH);
    let (diags, _d) = log::<DiagnosticArray>(&test, keys::DIAGNOSTICS);
    let pubs: Vec<_> = rig
        .cameras
        .iter()
        .map(|c| {
            let [color, depth, info] = c.topics();
            (
                test.publisher::<Image>(&color, Qos::Stream).unwrap(),
                test.publisher::<Image>(&depth, Qos::Stream).unwrap(),
                test.publisher::<CameraInfo>(&info, Qos::Stream).unwrap(),
                c.frame_id.clone(),
            )
        })
        .collect();
    let put = |i: usize, stamp: f64, frame_id: &str, rows: u32| {
        let (c, d, info) = frame(stamp, frame_id, rows);
        pubs[i].2.put(&info).unwrap();
        pubs[i].0.put(&c).unwrap();
        pubs[i].1.put(&d).unwrap();
    };
    let stamps = || -> Vec<f64> {
        maps.lock()
            .unwrap()
            .iter()
            .map(|(_, m)| m.header.stamp.as_secs_f64())
            .collect()
    };
    let said = |what: &str| {
        diags.lock().unwrap().iter().any(|(_, d)| {
            d.status.iter().any(|s| {
                s.message.contains(what) || s.values.iter().any(|v| v.value.contains(what))
            })
        })
    };
    // Both cameras at t = 1: one map, stamped 1.
    wait_for("a map from both cameras", Duration::from_secs(20), || {
        (0..2).for_each(|i| put(i, 1.0, &pubs[i].3, 24));
        std::thread::sleep(Duration::from_millis(100));
        stamps().contains(&1.0).then_some(())
    });
    // The front camera in a frame it is not calibrated for.
    put(0, 2.0, "camera_link", 24);
    put(1, 2.0, &pubs[1].3, 24);
    eventually("a refusal naming the frame", || said("\"camera_link\""));
    // Depth of another size than colour.
    put(0, 3.0, &pubs[0].3, 12);
    put(1, 3.0, &pubs[1].3, 24);
    eventually("a refusal naming the sizes", || said("sizes disagree"));
    // The left camera falls silent while the front one goes on.
    let mut t = 4.0;
    wait_for("the stale camera named", Duration::from_secs(20), || {
        put(0, t, &pubs[0].3, 24);
        t += 0.1;
        std::thread::sleep(Duration::from_millis(50));
        said("left: silent").then_some(())
    });
    assert!(
        stamps().iter().all(|&t| t < 2.0),
        "a map fused from some of the cameras: {:?}",
        stamps()
    );
    // It comes back in step: maps again.
    wait_for(
        "a map once both send again",
        Duration::from_secs(20),
        || {
            (0..2).for_each(|i| put(i, 100.0, &pubs[i].3, 24));
            std::thread::sleep(Duration::from_millis(100));
            stamps().contains(&100.0).then_some(())
        },
    );
    stop.store(true, Ordering::Relaxed);
}
