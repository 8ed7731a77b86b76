//! Every message round-trips; the bytes are ROS 2's; bad bytes are errors, never panics.

use loho_core::cdr::CdrError;
use loho_core::msg::*;

fn header() -> Header {
    Header::new(12.5, "world")
}

fn pose() -> Pose {
    Pose::from_xyz_yaw(0.5, -0.25, 0.04, 0.7)
}

fn roundtrip<T: Message + std::fmt::Debug + PartialEq>(m: T) -> Vec<u8> {
    let b = m.encode();
    assert_eq!(&b[..4], &[0, 1, 0, 0], "{}", T::TYPE_NAME);
    assert_eq!(T::decode(&b).unwrap(), m, "{}", T::TYPE_NAME);
    // Every strict prefix (beyond tolerated end padding) is an error, not a panic.
    for n in 0..b.len().saturating_sub(3) {
        assert!(T::decode(&b[..n]).is_err(), "{} prefix {n}", T::TYPE_NAME);
    }
    b
}

#[test]
fn every_message_round_trips() {
    roundtrip(StringMsg {
        data: "pick up the red block.".into(),
    });
    roundtrip(BoolMsg { data: true });
    roundtrip(Time {
        sec: -3,
        nanosec: 999,
    });
    roundtrip(header());
    roundtrip(pose());
    roundtrip(Image::rgb8(
        header(),
        2,
        2,
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    ));
    roundtrip(Image::f32c1(header(), 2, 1, &[0.04, 0.25]));
    roundtrip(InferRequest {
        instruction: "put the blocks in a bowl of the same color.".into(),
        color: Image::rgb8(header(), 1, 1, vec![1, 2, 3]),
        depth: Image::f32c1(header(), 1, 1, &[0.04]),
        keep_subtask: "pick up the red block and place it in the red bowl.".into(),
        rewrite: true,
        seed: 7,
    });
    roundtrip(HeightmapInfo {
        header: header(),
        x_min: 0.25,
        x_max: 0.75,
        y_min: -0.5,
        y_max: 0.5,
        z_min: 0.0,
        z_max: 0.28,
        pixel_size: 0.003125,
        height: 320,
        width: 160,
    });
    roundtrip(ArmState {
        header: header(),
        ee_pose: pose(),
        gripper: 1.0,
        holding: true,
        joint_names: vec!["shoulder_pan_joint".into(), "elbow_joint".into()],
        joint_positions: vec![0.1, -2.0],
        fault: "protective stop".into(),
    });
    roundtrip(ActionChunk {
        header: header(),
        obs_stamp: Time {
            sec: 12,
            nanosec: 5,
        },
        chunk_id: 7,
        subtask: "pick up the red block and place it on the blue bowl.".into(),
        keyposes: vec![
            Keypose {
                pose: pose(),
                gripper: 1.0,
                duration: 0.0,
            },
            Keypose {
                pose: pose(),
                gripper: 0.0,
                duration: 1.5,
            },
        ],
    });
    roundtrip(EeCommand {
        header: header(),
        chunk_id: 3,
        target: pose(),
        gripper: 0.0,
    });
    roundtrip(ExecStatus {
        header: header(),
        chunk_id: 3,
        state: ExecStatus::FAILED,
        reason: "pose outside workspace".into(),
    });
    roundtrip(EpisodeEvent {
        header: header(),
        task: "put-block-into-matching-bowl".into(),
        instruction: "put the blocks in the bowls with matching colors.".into(),
        seed: 10001,
        step: 2,
        max_steps: 7,
        reward: 0.2,
        total_reward: 0.4,
        done: false,
        success: false,
    });
    roundtrip(DiagnosticArray {
        header: header(),
        status: vec![DiagnosticStatus {
            level: 2,
            name: "controller".into(),
            message: "NaN in chunk".into(),
            hardware_id: "arm0".into(),
            values: vec![KeyValue {
                key: "chunk".into(),
                value: "3".into(),
            }],
        }],
    });
    roundtrip(Clock {
        clock: Time { sec: 1, nanosec: 2 },
    });
}

#[test]
fn time_converts_to_and_from_seconds() {
    let t = Time::from_secs_f64(12.5);
    assert_eq!(
        t,
        Time {
            sec: 12,
            nanosec: 500_000_000
        }
    );
    assert_eq!(t.as_secs_f64(), 12.5);
    assert_eq!(
        Time::from_secs_f64(-0.25),
        Time {
            sec: -1,
            nanosec: 750_000_000
        }
    );
}

#[test]
fn std_string_hello_is_ros2_bytes() {
    let b = StringMsg {
        data: "hello".into(),
    }
    .encode();
    assert_eq!(
        b,
        [0x00, 0x01, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00]
    );
}

#[test]
fn image_uses_ros2_alignment() {
    // Offsets count after the 4-byte encapsulation header. Header: sec 0, nanosec 4,
    // frame_id length 8 and "map\0" 12..16; height 16, width 20; encoding length 24 and
    // "rgb8\0" 28..33; is_bigendian 33; step aligned to 36; data length 40; data from 44.
    let img = Image::rgb8(Header::new(1.0, "map"), 1, 1, vec![9, 8, 7]);
    let b = img.encode();
    let body = &b[4..];
    assert_eq!(&body[0..4], &1i32.to_le_bytes());
    assert_eq!(&body[8..16], &[4, 0, 0, 0, b'm', b'a', b'p', 0]);
    assert_eq!(&body[16..20], &1u32.to_le_bytes());
    assert_eq!(&body[20..24], &1u32.to_le_bytes());
    assert_eq!(&body[24..28], &5u32.to_le_bytes());
    assert_eq!(&body[28..33], b"rgb8\0");
    assert_eq!(body[33], 0, "is_bigendian");
    assert_eq!(&body[34..36], &[0, 0], "padding before step");
    assert_eq!(&body[36..40], &3u32.to_le_bytes());
    assert_eq!(&body[40..44], &3u32.to_le_bytes());
    assert_eq!(&body[44..47], &[9, 8, 7]);
    assert_eq!(body.len(), 47);
}

#[test]
fn f64_fields_align_to_eight() {
    // ArmState: the header takes 4 + 4 + 4 + "world\0" = 18 bytes, so the pose's first
    // float64 is padded to offset 24.
    let m = ArmState {
        header: header(),
        ..Default::default()
    };
    let b = m.encode();
    assert_eq!(&b[4 + 18..4 + 24], &[0; 6]);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut seed = 0x9e3779b97f4a7c15u64;
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        let mut framed = vec![0, 1, 0, 0];
        framed.extend_from_slice(&bytes);
        for b in [&bytes, &framed] {
            let _ = Image::decode(b);
            let _ = ActionChunk::decode(b);
            let _ = ArmState::decode(b);
            let _ = DiagnosticArray::decode(b);
            let _ = EpisodeEvent::decode(b);
            let _ = InferRequest::decode(b);
        }
    }
    assert!(matches!(
        StringMsg::decode(&[1, 0]),
        Err(CdrError::NoHeader(2))
    ));
    assert!(matches!(
        StringMsg::decode(&[0, 0, 0, 0, 1, 0, 0, 0, 0]),
        Err(CdrError::Encapsulation(0, 0))
    ));
    // A bool that is not 0/1, and trailing junk, are both rejected.
    assert!(BoolMsg::decode(&[0, 1, 0, 0, 7]).is_err());
    assert!(BoolMsg::decode(&[0, 1, 0, 0, 1, 0, 0, 0, 0, 0]).is_err());
}

/// The `.msg` files a ROS 2 workspace builds list the same fields, in the same order,
/// as the Rust types.
#[test]
fn custom_types_match_their_msg_files() {
    fn fields(def: &str) -> Vec<String> {
        def.lines()
            .map(|l| l.split('#').next().unwrap().trim())
            .filter(|l| !l.is_empty() && !l.contains('='))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
            .collect()
    }
    fn check<T: Message>() {
        assert_eq!(fields(T::DEFINITION), T::FIELDS, "{}", T::TYPE_NAME);
    }
    check::<HeightmapInfo>();
    check::<ArmState>();
    check::<Keypose>();
    check::<ActionChunk>();
    check::<InferRequest>();
    check::<EeCommand>();
    check::<ExecStatus>();
    check::<EpisodeEvent>();
    check::<Image>();
    check::<DiagnosticStatus>();
}

#[test]
fn camera_info_is_the_bytes_ros2_writes() {
    // Written by rosbags 0.11.9 (`get_typestore(Stores.ROS2_HUMBLE).serialize_cdr`) for this
    // message: fixed arrays (`float64[9] k`) carry no length, `d` does, every float64
    // aligns to eight.
    const ROSBAGS: &str = "0001000001000000000000000400000063616d00e0010000800200000a000000706c756d625f626f6200000005000000000000009a9999999999b93f9a9999999999c9bffca9f1d24d62503ffca9f1d24d62603f00000000000000000000000000207c400000000000000000000000000000744000000000000000000000000000207c400000000000006e4000000000000000000000000000000000000000000000f03f000000000000f03f000000000000000000000000000000000000000000000000000000000000f03f000000000000000000000000000000000000000000000000000000000000f03f0000000000207c4000000000000000000000000000007440000000000000000000000000000000000000000000207c400000000000006e40000000000000000000000000000000000000000000000000000000000000f03f000000000000000000000000000000000000000000000000000000000000000000";
    let m = CameraInfo {
        header: Header::new(1.0, "cam"),
        height: 480,
        width: 640,
        distortion_model: "plumb_bob".into(),
        d: vec![0.1, -0.2, 0.001, 0.002, 0.0],
        k: [450.0, 0.0, 320.0, 0.0, 450.0, 240.0, 0.0, 0.0, 1.0],
        r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p: [
            450.0, 0.0, 320.0, 0.0, 0.0, 450.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0,
        ],
        ..Default::default()
    };
    let hex: String = m.encode().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, ROSBAGS);
    assert_eq!(CameraInfo::decode(&m.encode()).unwrap(), m);
}
