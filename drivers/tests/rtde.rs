//! The RTDE codec against byte fixtures written by hand from Universal Robots' RTDE guide
//! and their Python client (`serialize.py`: `>HB` header with the size including it,
//! command letters, v2 payloads), and against malformed input: every bad packet is a
//! typed error, never a panic.

use loho_drivers::ur::rtde::{
    self, field_type, Direction, Recipe, Reply, Request, RtdeError, TextMessage, Type, Value,
    Version,
};

/// Bytes from a hex string with spaces.
fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .flat_map(|w| {
            (0..w.len())
                .step_by(2)
                .map(move |i| u8::from_str_radix(&w[i..i + 2], 16).unwrap())
        })
        .collect()
}

fn request_bytes(r: &Request) -> Vec<u8> {
    rtde::encode(r.command(), &r.payload()).unwrap()
}

fn reply_bytes(r: &Reply) -> Vec<u8> {
    rtde::encode(r.command(), &r.payload()).unwrap()
}

/// Reads one packet from `bytes` as a reply.
fn reply(bytes: &[u8]) -> Result<Reply, RtdeError> {
    let (c, p) = rtde::read_packet(&mut &bytes[..])?;
    Reply::decode(c, &p)
}

fn request(bytes: &[u8]) -> Result<Request, RtdeError> {
    let (c, p) = rtde::read_packet(&mut &bytes[..])?;
    Request::decode(c, &p)
}

#[test]
fn the_handshake_is_byte_exact() {
    // V: size 5, 'V' (0x56), uint16 version 2.
    let v = Request::ProtocolVersion(2);
    assert_eq!(request_bytes(&v), hex("0005 56 0002"));
    assert_eq!(request(&hex("0005 56 0002")).unwrap(), v);
    // Reply: uint8 accepted.
    let ok = Reply::ProtocolVersion { accepted: true };
    assert_eq!(reply_bytes(&ok), hex("0004 56 01"));
    assert_eq!(
        reply(&hex("0004 56 00")).unwrap(),
        Reply::ProtocolVersion { accepted: false }
    );
    // v: empty request; reply 4 × uint32 (major, minor, bugfix, build).
    assert_eq!(request_bytes(&Request::ControllerVersion), hex("0003 76"));
    let version = Reply::ControllerVersion(Version {
        major: 5,
        minor: 21,
        bugfix: 3,
        build: 1234,
    });
    let bytes = hex("0013 76 00000005 00000015 00000003 000004d2");
    assert_eq!(reply_bytes(&version), bytes);
    assert_eq!(reply(&bytes).unwrap(), version);
    let Reply::ControllerVersion(v) = version else {
        unreachable!()
    };
    assert_eq!(v.rate_hz(), 500.0);
    // S and P: empty requests, uint8 success.
    assert_eq!(request_bytes(&Request::Start), hex("0003 53"));
    assert_eq!(request_bytes(&Request::Pause), hex("0003 50"));
    assert_eq!(
        reply(&hex("0004 53 01")).unwrap(),
        Reply::Start { accepted: true }
    );
}

#[test]
fn recipes_are_negotiated_as_the_guide_says() {
    // O: double frequency (500.0 = 0x407f400000000000) and comma-joined names.
    let o = Request::SetupOutputs {
        frequency: 500.0,
        names: vec!["timestamp".into(), "actual_q".into()],
    };
    let bytes = [
        hex("001d 4f 407f400000000000"),
        b"timestamp,actual_q".to_vec(),
    ]
    .concat();
    assert_eq!(request_bytes(&o), bytes);
    assert_eq!(request(&bytes).unwrap(), o);
    // Reply: uint8 recipe id and comma-joined types.
    let bytes = [hex("0013 4f 01"), b"DOUBLE,VECTOR6D".to_vec()].concat();
    let Reply::SetupOutputs { recipe, types } = reply(&bytes).unwrap() else {
        panic!()
    };
    let r = Recipe::accepted(recipe, &["timestamp", "actual_q"], &types).unwrap();
    assert_eq!(
        (r.id, r.types.clone()),
        (1, vec![Type::Double, Type::Vector6d])
    );
    // I: names only; an unknown name answers NOT_FOUND, one owned elsewhere IN_USE.
    let i = Request::SetupInputs {
        names: vec!["input_int_register_24".into(), "tool_digital_output".into()],
    };
    let bytes = [
        hex("002c 49"),
        b"input_int_register_24,tool_digital_output".to_vec(),
    ]
    .concat();
    assert_eq!(request_bytes(&i), bytes);
    let e = Recipe::accepted(
        0,
        &[
            "input_int_register_24",
            "no_such_input",
            "input_int_register_25",
        ],
        &["INT32".into(), "NOT_FOUND".into(), "IN_USE".into()],
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("no_such_input: NOT_FOUND"), "{text}");
    assert!(text.contains("input_int_register_25: IN_USE"), "{text}");
}

#[test]
fn the_field_table_has_the_real_names_and_types() {
    use Direction::*;
    for (dir, name, t) in [
        (Output, "timestamp", Some(Type::Double)),
        (Output, "actual_TCP_pose", Some(Type::Vector6d)),
        (Output, "actual_q", Some(Type::Vector6d)),
        (Output, "robot_mode", Some(Type::Int32)),
        (Output, "joint_mode", Some(Type::Vector6Int32)),
        (Output, "safety_status", Some(Type::Int32)),
        (Output, "runtime_state", Some(Type::Uint32)),
        (Output, "actual_digital_output_bits", Some(Type::Uint64)),
        (Output, "actual_tool_accelerometer", Some(Type::Vector3d)),
        (Output, "tool_output_mode", Some(Type::Uint8)),
        (Output, "output_int_register_24", Some(Type::Int32)),
        (Output, "output_double_register_47", Some(Type::Double)),
        (Output, "output_bit_register_64", Some(Type::Bool)),
        (Output, "input_int_register_24", Some(Type::Int32)),
        (Input, "input_double_register_0", Some(Type::Double)),
        (Input, "input_bit_register_127", Some(Type::Bool)),
        (Input, "tool_digital_output_mask", Some(Type::Uint8)),
        (Input, "speed_slider_fraction", Some(Type::Double)),
        // Out of range, misspelt, or an output asked as an input.
        (Input, "input_int_register_48", None),
        (Input, "input_int_register_07", None),
        (Input, "input_bit_register_63", None),
        (Input, "actual_q", None),
        (Output, "actual_Q", None),
    ] {
        assert_eq!(field_type(dir, name), t, "{dir:?} {name}");
    }
}

#[test]
fn a_data_package_decodes_field_by_field() {
    // U, recipe 1: timestamp 1.5, actual_q [0, 1, 2, -1, 0.5, 0.25], robot_mode 7,
    // runtime_state 2, actual_digital_output_bits bit 16 (tool output 0).
    let bytes = hex("004c 55 01
         3ff8000000000000
         0000000000000000 3ff0000000000000 4000000000000000
         bff0000000000000 3fe0000000000000 3fd0000000000000
         00000007
         00000002
         0000000000010000");
    let recipe = Recipe::accepted(
        1,
        &[
            "timestamp",
            "actual_q",
            "robot_mode",
            "runtime_state",
            "actual_digital_output_bits",
        ],
        &["DOUBLE", "VECTOR6D", "INT32", "UINT32", "UINT64"].map(String::from),
    )
    .unwrap();
    let Reply::Data(p) = reply(&bytes).unwrap() else {
        panic!()
    };
    let v = recipe.values(&p).unwrap();
    assert_eq!(
        v,
        vec![
            Value::Double(1.5),
            Value::Vector6d([0.0, 1.0, 2.0, -1.0, 0.5, 0.25]),
            Value::Int32(7),
            Value::Uint32(2),
            Value::Uint64(1 << 16),
        ]
    );
    // And back to the same bytes.
    assert_eq!(
        reply_bytes(&Reply::Data(recipe.package(&v).unwrap())),
        bytes
    );
    // An input package: recipe 2, INT32 -2, DOUBLE 0.5.
    let input = Recipe::accepted(
        2,
        &["input_int_register_24", "input_double_register_24"],
        &["INT32", "DOUBLE"].map(String::from),
    )
    .unwrap();
    let p = input
        .package(&[Value::Int32(-2), Value::Double(0.5)])
        .unwrap();
    assert_eq!(
        request_bytes(&Request::Data(p)),
        hex("0010 55 02 fffffffe 3fe0000000000000")
    );
    // A value of the wrong type is refused before it is sent.
    assert!(matches!(
        input.package(&[Value::Double(1.0), Value::Double(0.5)]),
        Err(RtdeError::ValueType { index: 0, .. })
    ));
}

#[test]
fn text_messages_use_the_v2_layout() {
    // uint8 length + message, uint8 length + source, uint8 level.
    let bytes = hex("0009 4d 02 6869 01 43 03");
    let m = TextMessage {
        message: "hi".into(),
        source: "C".into(),
        level: TextMessage::INFO,
    };
    assert_eq!(reply(&bytes).unwrap(), Reply::Text(m.clone()));
    assert_eq!(reply_bytes(&Reply::Text(m)), bytes);
}

#[test]
fn malformed_packets_are_typed_errors() {
    // A size below its own header.
    assert!(matches!(
        reply(&hex("0002 56")),
        Err(RtdeError::Undersized(2))
    ));
    // A size no RTDE packet has: refused before reading its payload.
    assert!(matches!(
        reply(&hex("ffff 55 01")),
        Err(RtdeError::Oversized(65535))
    ));
    // The peer closed mid-packet.
    assert!(matches!(
        reply(&hex("000a 55 01 02")),
        Err(RtdeError::Closed)
    ));
    assert!(matches!(reply(&hex("00")), Err(RtdeError::Closed)));
    // Fields missing, or left over.
    assert!(matches!(
        reply(&hex("0003 56")),
        Err(RtdeError::Short { .. })
    ));
    assert!(matches!(
        reply(&hex("0005 56 01 02")),
        Err(RtdeError::Trailing { .. })
    ));
    assert!(matches!(
        reply(&hex("0009 76 00000005 0000")),
        Err(RtdeError::Short { .. })
    ));
    // Unknown command, bad text.
    assert!(matches!(
        reply(&hex("0003 58")),
        Err(RtdeError::UnknownCommand(0x58))
    ));
    assert!(matches!(
        reply(&hex("0007 4d 01 ff 00 01")),
        Err(RtdeError::Text)
    ));
    // A data package for another recipe, or short of its recipe.
    let r = Recipe::accepted(1, &["timestamp"], &["DOUBLE".into()]).unwrap();
    let Reply::Data(other) = reply(&hex("000c 55 02 3ff8000000000000")).unwrap() else {
        panic!()
    };
    assert!(matches!(
        r.values(&other),
        Err(RtdeError::Recipe {
            expected: 1,
            got: 2
        })
    ));
    let Reply::Data(short) = reply(&hex("0008 55 01 3ff80000 00")).unwrap() else {
        panic!()
    };
    assert!(matches!(r.values(&short), Err(RtdeError::Short { .. })));
    let Reply::Data(long) = reply(&hex("000d 55 01 3ff8000000000000 00")).unwrap() else {
        panic!()
    };
    assert!(matches!(r.values(&long), Err(RtdeError::Trailing { .. })));
    // Nothing too long is ever written.
    assert!(matches!(
        rtde::encode(b'I', &vec![b'a'; 70_000]),
        Err(RtdeError::Oversized(_))
    ));
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let recipe = Recipe::accepted(
        1,
        &["timestamp", "actual_q", "joint_mode", "runtime_state"],
        &["DOUBLE", "VECTOR6D", "VECTOR6INT32", "UINT32"].map(String::from),
    )
    .unwrap();
    for len in 0..400 {
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        for command in [b'V', b'v', b'O', b'I', b'S', b'P', b'U', b'M', next() as u8] {
            let _ = Reply::decode(command, &bytes);
            let _ = Request::decode(command, &bytes);
        }
        let _ = reply(&bytes);
        let _ = recipe.values(&rtde::DataPackage {
            recipe: 1,
            bytes: bytes.clone(),
        });
    }
}

/// The mutation fuzzer (`loho_tests::fuzz`) over a stream of packets as the emulator and
/// the driver read them: every packet read, decoded both ways, its data against a recipe;
/// whatever decodes re-encodes to the same packet. And over loho's control program text,
/// as the emulator's secondary interface reads it.
#[test]
fn fuzzed_packet_streams_and_programs_are_errors_or_round_trips() {
    use loho_core::robot::Robot;
    use loho_drivers::ur::program::ControlProgram;
    use loho_drivers::ur::UrConfig;
    use loho_tests::fuzz;
    let n = fuzz::inputs(100_000);
    let recipe = Recipe::accepted(
        1,
        &["timestamp", "actual_q", "joint_mode", "runtime_state"],
        &["DOUBLE", "VECTOR6D", "VECTOR6INT32", "UINT32"].map(String::from),
    )
    .unwrap();
    let data = recipe
        .package(&[
            Value::Double(1.5),
            Value::Vector6d([0.0, 1.0, 2.0, -1.0, 0.5, 0.25]),
            Value::Vector6Int32([255; 6]),
            Value::Uint32(2),
        ])
        .unwrap();
    let packet = |c: u8, p: Vec<u8>| rtde::encode(c, &p).unwrap();
    let requests = [
        Request::ProtocolVersion(2),
        Request::SetupOutputs {
            frequency: 500.0,
            names: vec!["timestamp".into(), "actual_q".into()],
        },
        Request::Start,
        Request::Data(data.clone()),
    ];
    let replies = [
        Reply::ControllerVersion(Version {
            major: 5,
            minor: 21,
            bugfix: 3,
            build: 7,
        }),
        Reply::SetupOutputs {
            recipe: 1,
            types: vec!["DOUBLE".into(), "VECTOR6D".into()],
        },
        Reply::Data(data),
        Reply::Text(TextMessage {
            message: "hi".into(),
            source: "C".into(),
            level: TextMessage::INFO,
        }),
    ];
    // A conversation in each direction, and each packet alone.
    let mut seeds: Vec<Vec<u8>> = requests
        .iter()
        .map(|r| packet(r.command(), r.payload()))
        .chain(replies.iter().map(|r| packet(r.command(), r.payload())))
        .collect();
    seeds.push(seeds[..4].concat());
    seeds.push(seeds[4..8].concat());
    fuzz::run("RTDE packet streams", &seeds, n, |bytes| {
        let mut r = std::io::Cursor::new(bytes);
        let mut any = false;
        while let Ok((c, p)) = rtde::read_packet(&mut r) {
            if let Ok(q) = Request::decode(c, &p) {
                // Bytes, not values: a frequency may decode as NaN.
                let back = Request::decode(q.command(), &q.payload()).unwrap();
                assert_eq!(back.payload(), q.payload());
                any = true;
            }
            if let Ok(a) = Reply::decode(c, &p) {
                let back = Reply::decode(a.command(), &a.payload()).unwrap();
                assert_eq!(back.payload(), a.payload());
                if let Reply::Data(d) = &a {
                    if let Ok(v) = recipe.values(d) {
                        assert_eq!(recipe.package(&v).unwrap().bytes.len(), d.bytes.len());
                    }
                }
                any = true;
            }
        }
        any
    });
    let program = UrConfig::new(
        "127.0.0.1",
        Robot::ur5e(),
        std::time::Duration::from_millis(100),
    )
    .program
    .script()
    .into_bytes();
    fuzz::run(
        "URScript control program",
        &[program],
        n / 10,
        |bytes| match ControlProgram::parse(&String::from_utf8_lossy(bytes)) {
            Ok(p) => {
                assert_eq!(ControlProgram::parse(&p.script()).unwrap(), p);
                true
            }
            Err(_) => false,
        },
    );
}
