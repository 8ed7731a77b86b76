//! Every CDR decoder against mutated and random bytes (`loho_tests::fuzz`): never a
//! panic, never an allocation the bytes cannot back, and whatever decodes re-encodes to
//! bytes that decode to the same encoding again.

use loho_core::msg::*;
use loho_tests::fuzz;

/// Valid messages with every sequence and string non-empty, the seeds of the mutations.
fn header() -> Header {
    Header::new(1234.5, "world")
}

fn image() -> Image {
    Image::rgb8(header(), 2, 2, (0..12).collect())
}

fn status() -> DiagnosticArray {
    DiagnosticArray::report(
        3.0,
        DiagnosticArray::WARN,
        "controller",
        "e-stop",
        "estop topic",
    )
}

fn chunk() -> ActionChunk {
    ActionChunk {
        header: header(),
        obs_stamp: Time { sec: 4, nanosec: 5 },
        chunk_id: 7,
        subtask: "pick up the red block.".into(),
        keyposes: vec![
            Keypose {
                pose: Pose::from_xyz_yaw(0.5, 0.1, 0.02, 0.3),
                gripper: 1.0,
                duration: 0.5,
            };
            2
        ],
    }
}

/// Decodes `bytes` as `T`; a message that decodes must survive a round trip.
fn check<T: Message>(bytes: &[u8]) -> bool {
    match T::decode(bytes) {
        Ok(m) => {
            let again = m.encode();
            let back = T::decode(&again).expect("a re-encoded message decodes");
            assert_eq!(back.encode(), again, "{}", T::TYPE_NAME);
            true
        }
        Err(_) => false,
    }
}

fn target<T: Message + Default>(samples: &[T], n: usize) {
    let mut seeds: Vec<Vec<u8>> = samples.iter().map(|m| m.encode()).collect();
    seeds.push(T::default().encode());
    fuzz::run(T::TYPE_NAME, &seeds, n, check::<T>);
}

#[test]
fn every_decoder_survives_mutated_and_random_bytes() {
    let n = fuzz::inputs(100_000);
    let arm = ArmState {
        header: header(),
        ee_pose: Pose::from_xyz_yaw(0.4, 0.0, 0.3, 0.1),
        gripper: 1.0,
        holding: true,
        joint_names: vec!["shoulder_pan_joint".into(), "wrist_3_joint".into()],
        joint_positions: vec![0.1, -1.2],
        fault: "protective stop".into(),
    };
    let info = CameraInfo {
        header: header(),
        height: 160,
        width: 320,
        distortion_model: "plumb_bob".into(),
        d: vec![0.1, -0.2, 0.0, 0.0, 0.01],
        ..Default::default()
    };
    let request = InferRequest {
        instruction: "stack the blocks.".into(),
        color: image(),
        depth: Image::f32c1(header(), 1, 2, &[0.5, 0.25]),
        keep_subtask: "pick up the red block.".into(),
        rewrite: true,
        seed: 9,
    };
    let event = EpisodeEvent {
        header: header(),
        task: "stack-blocks".into(),
        instruction: "stack the blocks.".into(),
        seed: 3,
        step: 2,
        max_steps: 10,
        reward: 0.25,
        total_reward: 0.5,
        done: true,
        success: false,
    };
    target(&[Time { sec: 1, nanosec: 2 }], n);
    target(&[header()], n);
    target(
        &[Point {
            x: 1.0,
            y: 2.0,
            z: 3.0,
        }],
        n,
    );
    target(
        &[Quaternion {
            x: 0.0,
            y: 0.0,
            z: 0.6,
            w: 0.8,
        }],
        n,
    );
    target(&[chunk().keyposes[0].clone()], n);
    target(
        &[KeyValue {
            key: "reason".into(),
            value: "estop".into(),
        }],
        n,
    );
    target(&[status().status[0].clone()], n);
    target(
        &[RegionOfInterest {
            x_offset: 1,
            y_offset: 2,
            height: 3,
            width: 4,
            do_rectify: true,
        }],
        n,
    );
    target(
        &[StringMsg {
            data: "stack the blocks.".into(),
        }],
        n,
    );
    target(&[BoolMsg { data: true }], n);
    target(&[Pose::from_xyz_yaw(0.5, 0.1, 0.02, 0.3)], n);
    target(&[image()], n);
    target(&[info], n);
    target(&[status()], n);
    target(
        &[Clock {
            clock: Time { sec: 8, nanosec: 9 },
        }],
        n,
    );
    target(
        &[HeightmapInfo {
            header: header(),
            pixel_size: 0.003125,
            ..Default::default()
        }],
        n,
    );
    target(&[arm], n);
    target(&[chunk()], n);
    target(&[request], n);
    target(
        &[EeCommand {
            header: header(),
            chunk_id: 7,
            target: Pose::from_xyz_yaw(0.5, 0.0, 0.2, 0.0),
            gripper: 1.0,
        }],
        n,
    );
    target(
        &[ExecStatus {
            header: header(),
            chunk_id: 7,
            state: ExecStatus::FAILED,
            reason: "rejected: NaN".into(),
        }],
        n,
    );
    target(&[event], n);
}
