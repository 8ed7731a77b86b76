//! loho's nodes as ROS 2 nodes on rmw_zenoh (`--ros2 rmw-zenoh`): a session of this
//! process that knows only rmw_zenoh's wire (a plain zenoh session, as a ROS 2 node's
//! rmw is) sees loho's topics on rmw_zenoh's keys, with its attachment on every sample and
//! its graph tokens; what it publishes as a ROS 2 node reaches loho's controller; and a
//! graph in this mode ends its episode as the default graph does.
//!
//! This test binary is also the `loho` command line (`loho_tests::serve_as_child`), so
//! the nodes are real `loho` processes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loho_core::msg::{
    ActionChunk, ArmState, BoolMsg, EpisodeEvent, ExecStatus, Image, Keypose, Message,
};
use loho_runtime::bus::{Ros2, DEFAULT_ZENOH_CONFIG};
use loho_runtime::rmw::{self, Attachment};
use loho_runtime::{keys, Bus, BusConfig, Qos};
use loho_tests::{free_port, log, run_in_order, serve_as_child, Node, Test};
use zenoh::Wait;

const DOMAIN: u32 = 7;

fn main() {
    serve_as_child(loho::main_logged);
    let tests: [Test<()>; 3] = [
        (
            "a_ros2_node_publishing_estop_latches_the_controller",
            ros2_estop_reaches_the_controller,
        ),
        (
            "through_a_zenoh_router_as_ros2_runs_one_with_loho_as_its_client",
            through_a_router,
        ),
        (
            "an_rmw_zenoh_graph_ends_its_episode_as_the_default_graph_does_on_rmw_zenohs_wire",
            rmw_episode_as_default,
        ),
    ];
    run_in_order(&tests, || (), |_| {});
}

/// A plain zenoh session on loopback, as a ROS 2 node's rmw_zenoh opens one.
fn ros_session(listen: Option<&str>, connect: Option<&str>) -> zenoh::Session {
    let mut cfg = zenoh::Config::from_json5(DEFAULT_ZENOH_CONFIG).unwrap();
    let list = |e: Option<&str>| format!("[{}]", e.map(|e| format!("{e:?}")).unwrap_or_default());
    cfg.insert_json5("listen/endpoints", &list(listen)).unwrap();
    cfg.insert_json5("connect/endpoints", &list(connect))
        .unwrap();
    zenoh::open(cfg).wait().unwrap()
}

/// A loho session as ROS 2 node `node`: a zenoh client of the router at `connect` if
/// `client`.
fn rmw_bus(listen: Vec<String>, connect: Vec<String>, node: &str, client: bool) -> Bus {
    Bus::open(&BusConfig {
        client,
        listen,
        connect,
        ros2: Some(Ros2 {
            domain: DOMAIN,
            node: node.into(),
        }),
        ..Default::default()
    })
    .unwrap()
}

fn rmw_args() -> Vec<&'static str> {
    vec!["--ros2", "rmw-zenoh", "--domain", "7"]
}

/// A ROS 2 node publishes `std_msgs/Bool` true on `/arm0/estop` (key, CDR and attachment
/// as rmw_zenoh writes them); the controller then stops every chunk for the e-stop.
fn ros2_estop_reaches_the_controller(_: &mut ()) {
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let controller = Node::spawn(&[&["controller", "--listen", &ep][..], &rmw_args()].concat());
    let loho = rmw_bus(vec![], vec![ep.clone()], "test_policy", false);
    estop_stops_chunks(controller, &loho, &ros_session(None, Some(&ep)));
}

/// The same with every session joined to one zenoh router, as on a ROS 2 machine running
/// `rmw_zenohd`: loho's nodes as its clients (`--client`), the ROS 2 node a peer of it.
fn through_a_router(_: &mut ()) {
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let mut cfg = zenoh::Config::from_json5(DEFAULT_ZENOH_CONFIG).unwrap();
    cfg.insert_json5("mode", "\"router\"").unwrap();
    cfg.insert_json5("listen/endpoints", &format!("[{ep:?}]"))
        .unwrap();
    let _router = zenoh::open(cfg).wait().unwrap();
    let controller = Node::spawn(
        &[
            &["controller", "--client", "--connect", &ep][..],
            &rmw_args(),
        ]
        .concat(),
    );
    let loho = rmw_bus(vec![], vec![ep.clone()], "test_policy", true);
    estop_stops_chunks(controller, &loho, &ros_session(None, Some(&ep)));
}

/// `ros` publishes the e-stop until the controller stops a chunk `loho` sends for it.
fn estop_stops_chunks(mut controller: Node, loho: &Bus, ros: &zenoh::Session) {
    let (status, _sub) = log::<ExecStatus>(loho, keys::EXEC_STATUS);
    let chunks = loho
        .publisher::<ActionChunk>(keys::ACTION, Qos::Command)
        .unwrap();
    let key = rmw::topic_key(DOMAIN, "/arm0/estop", BoolMsg::TYPE_NAME).unwrap();
    let stopped = |id| {
        status.lock().unwrap().iter().any(|(_, s)| {
            s.chunk_id == id && s.state == ExecStatus::STOPPED && s.reason == "e-stop is latched"
        })
    };
    let t0 = Instant::now();
    for sequence in 1.. {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the controller never stopped a chunk for a ROS 2 node's e-stop: {:?}",
            status.lock().unwrap()
        );
        let attachment = Attachment {
            sequence,
            stamp_ns: loho_core::clock::wall_ns() as i64,
            gid: [0x42; 16],
        };
        ros.put(&key, BoolMsg { data: true }.encode())
            .attachment(attachment.encode().to_vec())
            .wait()
            .unwrap();
        let id = sequence as u64;
        chunks
            .put(&ActionChunk {
                chunk_id: id,
                keyposes: vec![Keypose::default()],
                ..Default::default()
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        if stopped(id) {
            break;
        }
    }
    assert!(controller.running(), "the controller died");
}

/// Samples a plain zenoh session saw: key → (attachment, payload) of each.
type Seen = Arc<Mutex<BTreeMap<String, Vec<(Option<Vec<u8>>, usize)>>>>;

/// The same lockstep episode through a default graph and an rmw_zenoh one; during the
/// latter a ROS-only session checks the wire.
fn rmw_episode_as_default(_: &mut ()) {
    let default = {
        let observer = format!("tcp/127.0.0.1:{}", free_port());
        let watcher = Bus::open(&BusConfig {
            listen: vec![observer.clone()],
            ..Default::default()
        })
        .unwrap();
        let (events, _sub) = log::<EpisodeEvent>(&watcher, keys::EPISODE);
        loho_tests::lockstep_episode("tcp", &[], &[observer], &events)
    };

    let [observer, ros_ep] = [0, 1].map(|_| format!("tcp/127.0.0.1:{}", free_port()));
    let watcher = rmw_bus(vec![observer.clone()], vec![], "test_watcher", false);
    let (events, _sub) = log::<EpisodeEvent>(&watcher, keys::EPISODE);
    let ros = ros_session(Some(&ros_ep), None);
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let _data = ros
        .declare_subscriber("**")
        .callback(move |s| {
            let attachment = s.attachment().map(|a| a.to_bytes().into_owned());
            sink.lock()
                .unwrap()
                .entry(s.key_expr().to_string())
                .or_default()
                .push((attachment, s.payload().len()));
        })
        .wait()
        .unwrap();
    let tokens: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = tokens.clone();
    let _graph = ros
        .liveliness()
        .declare_subscriber(format!("@ros2_lv/{DOMAIN}/**"))
        .history(true)
        .callback(move |s| {
            if s.kind() == zenoh::sample::SampleKind::Put {
                sink.lock().unwrap().push(s.key_expr().to_string());
            }
        })
        .wait()
        .unwrap();
    let rmw = loho_tests::lockstep_episode("tcp", &rmw_args(), &[observer, ros_ep], &events);

    let result = |e: &EpisodeEvent| (e.step, e.total_reward, e.success);
    assert!(default.step > 0, "{default:?}");
    assert_eq!(result(&rmw), result(&default), "{rmw:?} vs {default:?}");

    let seen = seen.lock().unwrap();
    let tokens = tokens.lock().unwrap();
    assert!(
        seen.keys().all(|k| !k.starts_with("loho/")),
        "a sample on loho's own layout: {:?}",
        seen.keys().collect::<Vec<_>>()
    );
    for node in ["loho_sim", "loho_controller", "loho_policy"] {
        assert!(
            tokens
                .iter()
                .any(|t| t.ends_with(&format!("/NN/%/%arm0/{node}"))),
            "no node token for {node} in {tokens:#?}"
        );
    }
    for (topic, ty) in [
        ("state", ArmState::TYPE_NAME),
        (keys::COLOR, Image::TYPE_NAME),
        ("episode", EpisodeEvent::TYPE_NAME),
    ] {
        let name = format!("/arm0/{topic}");
        let key = rmw::topic_key(DOMAIN, &name, ty).unwrap();
        let samples = seen.get(&key).unwrap_or_else(|| {
            panic!(
                "nothing on {key}; keys seen: {:#?}",
                seen.keys().collect::<Vec<_>>()
            )
        });
        let publisher = tokens
            .iter()
            .find(|t| t.contains("/MP/") && t.contains(&format!("/{}/", rmw::mangle(&name))))
            .unwrap_or_else(|| panic!("no publisher token for {name} in {tokens:#?}"));
        assert!(
            publisher.contains(&rmw::type_hash(ty).unwrap()),
            "{publisher}"
        );
        let mut last = 0;
        for (attachment, len) in samples {
            let a = Attachment::decode(attachment.as_deref().expect("a sample without attachment"))
                .unwrap();
            assert_eq!(
                a.gid,
                rmw::gid(publisher),
                "{key}: the GID is not its token's"
            );
            assert!(
                a.sequence > last,
                "{key}: sequence {} after {last}",
                a.sequence
            );
            last = a.sequence;
            assert!(*len > 4);
        }
    }
    let subscribed = format!("/{}/", rmw::mangle("/arm0/estop"));
    assert!(
        tokens
            .iter()
            .any(|t| t.contains("/MS/") && t.contains(&subscribed)),
        "no subscription token for /arm0/estop in {tokens:#?}"
    );
}
