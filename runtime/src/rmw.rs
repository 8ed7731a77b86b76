//! rmw_zenoh's wire, so that ROS 2 nodes (Jazzy, Kilted) on zenoh talk to loho with no
//! bridge: the data key of a topic, the attachment every sample carries, the liveliness
//! tokens that make loho's nodes, publishers and subscriptions part of the ROS graph, and
//! the RIHS01 type hashes those keys and tokens name.
//!
//! Everything here follows rmw_zenoh's `docs/design.md` and its `liveliness_utils.cpp`,
//! `attachment_helpers.cpp` and `qos.cpp`; the type hash follows REP-2011 as
//! `rosidl_generator_type_description` computes it (docs/ros2.md has the whole picture
//! and the sources).

use sha2::{Digest, Sha256};
use thiserror::Error;

use loho_core::msgdef::{self, Array, FieldDef};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RmwError {
    #[error("rmw_zenoh attachment of {0} bytes: expected 33 (i64 sequence number, i64 timestamp, length 16, 16-byte GID)")]
    Attachment(usize),
    #[error("no ROS 2 type description for {0}: not a message type loho defines")]
    UnknownType(String),
}

/// `RIHS01_<sha256 of the type description>`, as ROS 2 Iron and later put it in keys.
pub fn type_hash(type_name: &str) -> Result<String, RmwError> {
    let json = type_description(type_name)?;
    let digest = Sha256::digest(json.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("RIHS01_{hex}"))
}

/// The hashed form of a type's description (REP-2011): the type's fields, then every
/// type it uses, sorted by name; default values left out; JSON with `", "` and `": "`
/// separators and keys in this order, as Python's `json.dumps` writes it there.
pub fn type_description(type_name: &str) -> Result<String, RmwError> {
    let unknown = || RmwError::UnknownType(type_name.into());
    let mut used = vec![];
    let mut todo = vec![type_name.to_string()];
    while let Some(t) = todo.pop() {
        for f in msgdef::fields(&t).ok_or_else(unknown)? {
            if let Some(n) = f.nested() {
                if !used.iter().any(|u| u == n) {
                    used.push(n.to_string());
                    todo.push(n.to_string());
                }
            }
        }
    }
    used.sort();
    let refs: Vec<String> = used
        .iter()
        .map(|t| individual(t).ok_or_else(unknown))
        .collect::<Result<_, _>>()?;
    Ok(format!(
        "{{\"type_description\": {}, \"referenced_type_descriptions\": [{}]}}",
        individual(type_name).ok_or_else(unknown)?,
        refs.join(", ")
    ))
}

/// One type's `{"type_name": …, "fields": […]}`.
fn individual(type_name: &str) -> Option<String> {
    let fields: Vec<String> = msgdef::fields(type_name)?
        .iter()
        .map(|f| {
            let (capacity, offset) = match f.array {
                Array::Single => (0, 0),
                Array::Fixed(n) => (n, 48),
                Array::Bounded(n) => (n, 96),
                Array::Unbounded => (0, 144),
            };
            format!(
                "{{\"name\": \"{}\", \"type\": {{\"type_id\": {}, \"capacity\": {capacity}, \
                 \"string_capacity\": {}, \"nested_type_name\": \"{}\"}}}}",
                f.name,
                field_type_id(f) + offset,
                f.string_bound.unwrap_or(0),
                f.nested().unwrap_or("")
            )
        })
        .collect();
    Some(format!(
        "{{\"type_name\": \"{type_name}\", \"fields\": [{}]}}",
        fields.join(", ")
    ))
}

/// `type_description_interfaces/msg/FieldType` of a single value. A `.msg` `char` is a
/// `uint8` in IDL, `byte` an `octet`.
fn field_type_id(f: &FieldDef) -> u8 {
    match (f.ty.as_str(), f.string_bound) {
        ("int8", _) => 2,
        ("uint8" | "char", _) => 3,
        ("int16", _) => 4,
        ("uint16", _) => 5,
        ("int32", _) => 6,
        ("uint32", _) => 7,
        ("int64", _) => 8,
        ("uint64", _) => 9,
        ("float32", _) => 10,
        ("float64", _) => 11,
        ("bool", _) => 15,
        ("byte", _) => 16,
        ("string", None) => 17,
        ("wstring", None) => 18,
        ("string", Some(_)) => 21,
        ("wstring", Some(_)) => 22,
        _ => 1,
    }
}

/// `sensor_msgs/msg/Image` → `sensor_msgs::msg::dds_::Image_`.
pub fn dds_type_name(type_name: &str) -> String {
    match type_name.rsplit_once('/') {
        Some((ns, name)) => format!("{}::dds_::{name}_", ns.replace('/', "::")),
        None => format!("dds_::{type_name}_"),
    }
}

/// The data key of a topic: `<domain>/<name without its leading />/<DDS type>/<hash>`.
pub fn topic_key(domain: u32, topic: &str, type_name: &str) -> Result<String, RmwError> {
    Ok(format!(
        "{domain}/{}/{}/{}",
        topic.trim_start_matches('/'),
        dds_type_name(type_name),
        type_hash(type_name)?
    ))
}

/// What rides along every sample: the publisher's sequence number, its clock when it
/// published, and its GID. rmw_zenoh drops a sample without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment {
    pub sequence: i64,
    /// Nanoseconds since the Unix epoch.
    pub stamp_ns: i64,
    pub gid: [u8; 16],
}

impl Attachment {
    /// zenoh's `ext::Serializer` layout: two little-endian i64, then the GID as a
    /// sequence (its length as LEB128, one byte for 16, then the bytes).
    pub fn encode(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out[..8].copy_from_slice(&self.sequence.to_le_bytes());
        out[8..16].copy_from_slice(&self.stamp_ns.to_le_bytes());
        out[16] = 16;
        out[17..].copy_from_slice(&self.gid);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, RmwError> {
        let wrong = || RmwError::Attachment(bytes.len());
        if bytes.len() != 33 || bytes[16] != 16 {
            return Err(wrong());
        }
        let i64_at = |at: usize| i64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
        Ok(Self {
            sequence: i64_at(0),
            stamp_ns: i64_at(8),
            gid: bytes[17..].try_into().map_err(|_| wrong())?,
        })
    }
}

/// The QoS a publisher or subscription announces (what loho uses of rmw's profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QosProfile {
    pub reliable: bool,
    pub transient_local: bool,
    /// `None`: keep all.
    pub keep_last: Option<usize>,
}

impl QosProfile {
    /// rmw_zenoh's compact form: `reliability:durability:history,depth:deadline:lifespan:
    /// liveliness`, each field left empty where it equals rmw_zenoh's default (reliable,
    /// volatile, keep last 42, infinite durations, automatic liveliness).
    pub fn to_keyexpr(&self) -> String {
        let reliability = if self.reliable { "" } else { "2" };
        let durability = if self.transient_local { "1" } else { "" };
        let (history, depth) = match self.keep_last {
            Some(42) => (String::new(), String::new()),
            Some(n) => (String::new(), n.to_string()),
            None => ("2".into(), String::new()),
        };
        format!("{reliability}:{durability}:{history},{depth}:,:,:,,")
    }
}

/// What a liveliness token announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Node,
    Publisher,
    Subscription,
}

impl EntityKind {
    fn as_str(self) -> &'static str {
        match self {
            EntityKind::Node => "NN",
            EntityKind::Publisher => "MP",
            EntityKind::Subscription => "MS",
        }
    }
}

/// A ROS name in one key chunk: every `/` becomes `%`.
pub fn mangle(name: &str) -> String {
    name.replace('/', "%")
}

/// A node as the ROS graph knows it.
#[derive(Debug, Clone)]
pub struct NodeName {
    pub domain: u32,
    /// The session's zenoh id, as zenoh prints it.
    pub zid: String,
    /// The node's number within its session.
    pub id: u32,
    /// `/` or `/robot1`.
    pub namespace: String,
    pub name: String,
}

impl NodeName {
    /// `@ros2_lv/<domain>/<zid>/<node id>/<node id>/NN/<enclave>/<namespace>/<name>`.
    pub fn token(&self) -> String {
        format!(
            "@ros2_lv/{}/{}/{}/{}/NN/%/{}/{}",
            self.domain,
            self.zid,
            self.id,
            self.id,
            mangle(&self.namespace),
            mangle(&self.name)
        )
    }

    /// The token of this node's publisher or subscription number `id` on `topic`
    /// (fully qualified, e.g. `/arm0/state`).
    pub fn entity_token(
        &self,
        kind: EntityKind,
        id: u32,
        topic: &str,
        type_name: &str,
        qos: QosProfile,
    ) -> Result<String, RmwError> {
        Ok(format!(
            "@ros2_lv/{}/{}/{}/{id}/{}/%/{}/{}/{}/{}/{}/{}",
            self.domain,
            self.zid,
            self.id,
            kind.as_str(),
            mangle(&self.namespace),
            mangle(&self.name),
            mangle(topic),
            dds_type_name(type_name),
            type_hash(type_name)?,
            qos.to_keyexpr()
        ))
    }
}

/// The GID rmw_zenoh gives an entity: XXH3-128 of its liveliness token, low half first.
pub fn gid(token: &str) -> [u8; 16] {
    xxhash_rust::xxh3::xxh3_128(token.as_bytes()).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ROS 2 types: the values rmw_zenoh's design document gives (`String`) and
    /// those ROS 2 Jazzy generates, as independent implementations of its wire pin them
    /// (docs/ros2.md says where each was read). loho's own: computed here, pinned so a
    /// change to a `.msg` file, which changes the wire, is a deliberate one.
    #[test]
    fn type_hashes_match_published_values() {
        let published = [
            (
                "builtin_interfaces/msg/Time",
                "b106235e25a4c5ed35098aa0a61a3ee9c9b18d197f398b0e4206cea9acf9c197",
            ),
            (
                "std_msgs/msg/Header",
                "f49fb3ae2cf070f793645ff749683ac6b06203e41c891e17701b1cb597ce6a01",
            ),
            (
                "std_msgs/msg/String",
                "df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18",
            ),
            (
                "std_msgs/msg/Bool",
                "feb91e995ff9ebd09c0cb3d2aed18b11077585839fb5db80193b62d74528f6c9",
            ),
            (
                "geometry_msgs/msg/Point",
                "6963084842a9b04494d6b2941d11444708d892da2f4b09843b9c43f42a7f6881",
            ),
            (
                "geometry_msgs/msg/Quaternion",
                "8a765f66778c8ff7c8ab94afcc590a2ed5325a1d9a076ffff38fbce36f458684",
            ),
            (
                "geometry_msgs/msg/Pose",
                "d501954e9476cea2996984e812054b68026ae0bfae789d9a10b23daf35cc90fa",
            ),
            (
                "sensor_msgs/msg/Image",
                "d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
            ),
            (
                "sensor_msgs/msg/RegionOfInterest",
                "ad16bcba5f9131dcdba6fbded19f726f5440e3c513b4fb586dd3027eeed8abb1",
            ),
            (
                "sensor_msgs/msg/CameraInfo",
                "b3dfd68ff46c9d56c80fd3bd4ed22c7a4ddce8c8348f2f59c299e73118e7e275",
            ),
            (
                "diagnostic_msgs/msg/KeyValue",
                "d68081eaa540288c5440753baecef0c4e16e81a5f78ad68902ded5100413bb42",
            ),
            (
                "diagnostic_msgs/msg/DiagnosticStatus",
                "b0e3e692ea2d54a8af2f4ef1930e81556a2db55216b771f8a7d2724ed47bf0e4",
            ),
            (
                "diagnostic_msgs/msg/DiagnosticArray",
                "5a8a36efb05fb25070fa0fb3810290c0e6cd4862b54a8fb975a1ee8dc55a333e",
            ),
            (
                "rosgraph_msgs/msg/Clock",
                "692f7a66e93a3c83e71765d033b60349ba68023a8c689a79e48078bcb5c58564",
            ),
        ];
        let ours = [
            (
                "loho_msgs/msg/HeightmapInfo",
                "c2c1d3e8680c830a0632bf3e080b25d9188126a2ead13b866dd029fce71a09d2",
            ),
            (
                "loho_msgs/msg/ArmState",
                "a0ac2c6920070914706dd7f2e0815ff82f471c6bd92a7dd3c76dd64a98a25543",
            ),
            (
                "loho_msgs/msg/Keypose",
                "a45a943e33ad29730ee96f7b022c1363f3d99c0de0380af02f58373ea59a8b53",
            ),
            (
                "loho_msgs/msg/ActionChunk",
                "74e01412a907d4ecb837b83340eca403af26928183c178a897d51c4d51a7558f",
            ),
            (
                "loho_msgs/msg/InferRequest",
                "fa1397ac55a912afca9c6a7135dcd31346d54bfb1dd0dcbe032935f14222e21e",
            ),
            (
                "loho_msgs/msg/EeCommand",
                "2d031d18716da7c17a3d231daf50bb6a6e00ba8380b336b72200e98b9d5bbd9b",
            ),
            (
                "loho_msgs/msg/ExecStatus",
                "cf5669fb560ae4798a8335f73c657002b6ec92a026ad91c181a4f4b8a415cc03",
            ),
            (
                "loho_msgs/msg/EpisodeEvent",
                "bd7fb007edde863c9b348539b778247e65af96d263e1f54824991c0baacead45",
            ),
        ];
        for (ty, hash) in published.iter().chain(&ours) {
            assert_eq!(type_hash(ty).unwrap(), format!("RIHS01_{hash}"), "{ty}");
        }
        let every = loho_core::msgdef::definitions();
        assert_eq!(
            every.len(),
            published.len() + ours.len(),
            "a type without a hash here"
        );
        assert!(matches!(
            type_hash("std_msgs/msg/Nope"),
            Err(RmwError::UnknownType(_))
        ));
    }

    #[test]
    fn keys_and_tokens_match_the_design_document() {
        assert_eq!(
            topic_key(0, "/chatter", "std_msgs/msg/String").unwrap(),
            "0/chatter/std_msgs::msg::dds_::String_/RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18"
        );
        assert_eq!(
            topic_key(0, "/robot1/chatter", "std_msgs/msg/String").unwrap(),
            "0/robot1/chatter/std_msgs::msg::dds_::String_/RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18"
        );
        let listener = NodeName {
            domain: 2,
            zid: "aac3178e146ba6f1fc6e6a4085e77f21".into(),
            id: 0,
            namespace: "/".into(),
            name: "listener".into(),
        };
        assert_eq!(
            listener.token(),
            "@ros2_lv/2/aac3178e146ba6f1fc6e6a4085e77f21/0/0/NN/%/%/listener"
        );
        let qos = |depth| QosProfile {
            reliable: true,
            transient_local: false,
            keep_last: Some(depth),
        };
        assert_eq!(
            listener
                .entity_token(EntityKind::Subscription, 10, "/chatter", "std_msgs/msg/String", qos(10))
                .unwrap(),
            "@ros2_lv/2/aac3178e146ba6f1fc6e6a4085e77f21/0/10/MS/%/%/listener/%chatter/std_msgs::msg::dds_::String_/RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18/::,10:,:,:,,"
        );
        let talker = NodeName {
            zid: "8b20917502ee955ac4476e0266340d5c".into(),
            name: "talker".into(),
            ..listener
        };
        assert_eq!(
            talker
                .entity_token(EntityKind::Publisher, 10, "/chatter", "std_msgs/msg/String", qos(7))
                .unwrap(),
            "@ros2_lv/2/8b20917502ee955ac4476e0266340d5c/0/10/MP/%/%/talker/%chatter/std_msgs::msg::dds_::String_/RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18/::,7:,:,:,,"
        );
    }

    #[test]
    fn qos_strings_leave_defaults_empty() {
        let q = |reliable, transient_local, keep_last| {
            QosProfile {
                reliable,
                transient_local,
                keep_last,
            }
            .to_keyexpr()
        };
        assert_eq!(q(true, false, Some(42)), "::,:,:,:,,");
        assert_eq!(q(false, false, Some(5)), "2::,5:,:,:,,");
        assert_eq!(q(true, true, Some(1)), ":1:,1:,:,:,,");
        assert_eq!(q(true, false, None), "::2,:,:,:,,");
    }

    #[test]
    fn attachments_are_33_bytes_and_round_trip() {
        let a = Attachment {
            sequence: 7,
            stamp_ns: 1_700_000_000_123_456_789,
            gid: [0xab; 16],
        };
        let b = a.encode();
        assert_eq!(&b[..8], &7i64.to_le_bytes());
        assert_eq!(&b[8..16], &1_700_000_000_123_456_789i64.to_le_bytes());
        assert_eq!(b[16], 16);
        assert_eq!(&b[17..], &[0xab; 16]);
        assert_eq!(Attachment::decode(&b), Ok(a));
        assert_eq!(Attachment::decode(&b[..32]), Err(RmwError::Attachment(32)));
        let mut wrong = b;
        wrong[16] = 15;
        assert!(Attachment::decode(&wrong).is_err());
    }

    /// The reference value from the `xxhash` package (`xxh3_128_intdigest`), which
    /// rmw_zenoh's simplified copy of XXH3 reproduces.
    #[test]
    fn gids_are_xxh3_128_of_the_token() {
        let talker = "@ros2_lv/2/8b20917502ee955ac4476e0266340d5c/0/10/MP/%/%/talker/%chatter/std_msgs::msg::dds_::String_/RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18/::,7:,:,:,,";
        for (input, want) in [
            ("abc".to_string(), 8891052093862885505146213044715469136),
            (talker.to_string(), 37870343516415125946993053925066610604),
            ("x".repeat(300), 24353006351705750288600066029926233428),
        ] {
            assert_eq!(u128::from_le_bytes(gid(&input)), want, "{input}");
        }
    }
}
