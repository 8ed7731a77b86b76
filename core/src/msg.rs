//! The message types of loho (docs/runtime.md), laid out field for field as their ROS 2 definitions.
//!
//! Standard types (`std_msgs`, `sensor_msgs`, …) follow the ROS 2 Humble `.msg` files;
//! loho's own types are defined in `runtime/msg/loho_msgs/msg/*.msg` and compiled in here,
//! so the Rust struct and the file a ROS 2 workspace builds cannot drift apart unnoticed
//! (a test compares their field lists).

use crate::cdr::{CdrError, Fixed, Reader, Sink, Writer};

/// A value that can be a field of a message.
pub trait Field: Sized {
    /// Fewest bytes one value can take on the wire; bounds sequence counts when decoding.
    const MIN_SIZE: usize;
    fn write<S: Sink>(&self, w: &mut Writer<S>);
    fn read(r: &mut Reader) -> Result<Self, CdrError>;
    fn write_seq<S: Sink>(v: &[Self], w: &mut Writer<S>) {
        w.len(v.len());
        v.iter().for_each(|x| x.write(w));
    }
    fn read_seq(r: &mut Reader) -> Result<Vec<Self>, CdrError> {
        let n = r.len(Self::MIN_SIZE)?;
        (0..n).map(|_| Self::read(r)).collect()
    }
}

/// A whole message: a field that also knows its ROS 2 type name and definition.
pub trait Message: Field {
    /// The ROS 2 type name, e.g. `sensor_msgs/msg/Image`.
    const TYPE_NAME: &'static str;
    /// The `.msg` text of this type alone.
    const DEFINITION: &'static str;
    /// Field names in wire order.
    const FIELDS: &'static [&'static str];

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.finish()
    }
    /// [`Message::encode`] into `mem` (a shared-memory slot): its length, or `None` when
    /// it does not fit.
    fn encode_to(&self, mem: &mut [u8]) -> Option<usize> {
        let mut w = Writer::to(Fixed::new(mem));
        self.write(&mut w);
        w.finish().fits()
    }
    fn decode(payload: &[u8]) -> Result<Self, CdrError> {
        let mut r = Reader::new(payload)?;
        let v = Self::read(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

macro_rules! primitive {
    ($t:ty, $size:expr, $w:ident, $r:ident) => {
        impl Field for $t {
            const MIN_SIZE: usize = $size;
            fn write<S: Sink>(&self, w: &mut Writer<S>) {
                w.$w(*self)
            }
            fn read(r: &mut Reader) -> Result<Self, CdrError> {
                r.$r()
            }
        }
    };
}
primitive!(bool, 1, bool, bool);
primitive!(i8, 1, i8, i8);
primitive!(u16, 2, u16, u16);
primitive!(u32, 4, u32, u32);
primitive!(i32, 4, i32, i32);
primitive!(u64, 8, u64, u64);
primitive!(f32, 4, f32, f32);
primitive!(f64, 8, f64, f64);

impl Field for u8 {
    const MIN_SIZE: usize = 1;
    fn write<S: Sink>(&self, w: &mut Writer<S>) {
        w.u8(*self)
    }
    fn read(r: &mut Reader) -> Result<Self, CdrError> {
        r.u8()
    }
    // Image data is hundreds of kilobytes: copy it in one go.
    fn write_seq<S: Sink>(v: &[Self], w: &mut Writer<S>) {
        w.bytes(v)
    }
    fn read_seq(r: &mut Reader) -> Result<Vec<Self>, CdrError> {
        r.bytes()
    }
}

impl Field for String {
    const MIN_SIZE: usize = 4;
    fn write<S: Sink>(&self, w: &mut Writer<S>) {
        w.string(self)
    }
    fn read(r: &mut Reader) -> Result<Self, CdrError> {
        r.string()
    }
}

/// A fixed-size array (`float64[9]`): its elements in order, no length on the wire.
impl<T: Field + Copy + Default, const N: usize> Field for [T; N] {
    const MIN_SIZE: usize = N * T::MIN_SIZE;
    fn write<S: Sink>(&self, w: &mut Writer<S>) {
        self.iter().for_each(|x| x.write(w));
    }
    fn read(r: &mut Reader) -> Result<Self, CdrError> {
        let mut a = [T::default(); N];
        for x in &mut a {
            *x = T::read(r)?;
        }
        Ok(a)
    }
}

impl<T: Field> Field for Vec<T> {
    const MIN_SIZE: usize = 4;
    fn write<S: Sink>(&self, w: &mut Writer<S>) {
        T::write_seq(self, w)
    }
    fn read(r: &mut Reader) -> Result<Self, CdrError> {
        T::read_seq(r)
    }
}

/// Declares a message struct, its CDR encoding (fields in order) and its definition.
macro_rules! message {
    ($(#[$m:meta])* $name:ident = $ty:literal, $def:expr, { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }

        impl Field for $name {
            const MIN_SIZE: usize = 0 $(+ <$t as Field>::MIN_SIZE)*;
            fn write<S: Sink>(&self, _w: &mut Writer<S>) {
                $(self.$f.write(_w);)*
            }
            fn read(_r: &mut Reader) -> Result<Self, CdrError> {
                Ok(Self { $($f: <$t>::read(_r)?),* })
            }
        }

        impl Message for $name {
            const TYPE_NAME: &'static str = $ty;
            const DEFINITION: &'static str = $def;
            const FIELDS: &'static [&'static str] = &[$(stringify!($f)),*];
        }
    };
}

message!(
    /// `builtin_interfaces/msg/Time`.
    Time = "builtin_interfaces/msg/Time", "int32 sec\nuint32 nanosec\n", { sec: i32, nanosec: u32 }
);

impl Time {
    pub fn from_secs_f64(s: f64) -> Self {
        let sec = s.floor();
        Self {
            sec: sec as i32,
            nanosec: ((s - sec) * 1e9).round().min(999_999_999.0) as u32,
        }
    }
    pub fn as_secs_f64(&self) -> f64 {
        self.sec as f64 + self.nanosec as f64 * 1e-9
    }
}

message!(
    /// `std_msgs/msg/Header`.
    Header = "std_msgs/msg/Header", "builtin_interfaces/Time stamp\nstring frame_id\n",
    { stamp: Time, frame_id: String }
);

impl Header {
    pub fn new(stamp_s: f64, frame_id: &str) -> Self {
        Self {
            stamp: Time::from_secs_f64(stamp_s),
            frame_id: frame_id.to_string(),
        }
    }
}

message!(
    /// `std_msgs/msg/String`.
    StringMsg = "std_msgs/msg/String", "string data\n", { data: String }
);
message!(
    /// `std_msgs/msg/Bool`.
    BoolMsg = "std_msgs/msg/Bool", "bool data\n", { data: bool }
);
message!(
    /// `geometry_msgs/msg/Point`.
    Point = "geometry_msgs/msg/Point", "float64 x\nfloat64 y\nfloat64 z\n", { x: f64, y: f64, z: f64 }
);
message!(
    /// `geometry_msgs/msg/Quaternion`.
    Quaternion = "geometry_msgs/msg/Quaternion", "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1\n",
    { x: f64, y: f64, z: f64, w: f64 }
);
message!(
    /// `geometry_msgs/msg/Pose`.
    Pose = "geometry_msgs/msg/Pose", "Point position\nQuaternion orientation\n",
    { position: Point, orientation: Quaternion }
);

impl Pose {
    /// A pose at (x, y, z) rotated by `yaw` about +z: how tabletop keyposes are written.
    pub fn from_xyz_yaw(x: f64, y: f64, z: f64, yaw: f64) -> Self {
        Self {
            position: Point { x, y, z },
            orientation: Quaternion {
                x: 0.0,
                y: 0.0,
                z: (yaw / 2.0).sin(),
                w: (yaw / 2.0).cos(),
            },
        }
    }
    /// Rotation about +z of the orientation (tilt discarded).
    pub fn yaw(&self) -> f64 {
        let q = &self.orientation;
        (2.0 * (q.w * q.z + q.x * q.y)).atan2(1.0 - 2.0 * (q.y * q.y + q.z * q.z))
    }
    pub fn is_finite(&self) -> bool {
        let p = &self.position;
        let q = &self.orientation;
        [p.x, p.y, p.z, q.x, q.y, q.z, q.w]
            .iter()
            .all(|v| v.is_finite())
    }
}

message!(
    /// `sensor_msgs/msg/Image`.
    Image = "sensor_msgs/msg/Image",
    "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\nuint32 step\nuint8[] data\n",
    { header: Header, height: u32, width: u32, encoding: String, is_bigendian: u8, step: u32, data: Vec<u8> }
);

message!(
    /// `sensor_msgs/msg/RegionOfInterest`.
    RegionOfInterest = "sensor_msgs/msg/RegionOfInterest",
    "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify\n",
    { x_offset: u32, y_offset: u32, height: u32, width: u32, do_rectify: bool }
);
message!(
    /// `sensor_msgs/msg/CameraInfo`: a camera's pinhole model (`k`, row-major 3×3) and
    /// lens distortion (`d`, as `distortion_model` names it) for the image of the same
    /// stamp and frame.
    CameraInfo = "sensor_msgs/msg/CameraInfo",
    "std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\nfloat64[] d\nfloat64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\nuint32 binning_y\nRegionOfInterest roi\n",
    { header: Header, height: u32, width: u32, distortion_model: String, d: Vec<f64>, k: [f64; 9],
      r: [f64; 9], p: [f64; 12], binning_x: u32, binning_y: u32, roi: RegionOfInterest }
);

message!(
    /// `diagnostic_msgs/msg/KeyValue`.
    KeyValue = "diagnostic_msgs/msg/KeyValue", "string key\nstring value\n", { key: String, value: String }
);
message!(
    /// `diagnostic_msgs/msg/DiagnosticStatus`. `level`: 0 OK, 1 WARN, 2 ERROR, 3 STALE.
    DiagnosticStatus = "diagnostic_msgs/msg/DiagnosticStatus",
    "byte OK=0\nbyte WARN=1\nbyte ERROR=2\nbyte STALE=3\nbyte level\nstring name\nstring message\nstring hardware_id\nKeyValue[] values\n",
    { level: u8, name: String, message: String, hardware_id: String, values: Vec<KeyValue> }
);
message!(
    /// `diagnostic_msgs/msg/DiagnosticArray`.
    DiagnosticArray = "diagnostic_msgs/msg/DiagnosticArray",
    "std_msgs/Header header\nDiagnosticStatus[] status\n",
    { header: Header, status: Vec<DiagnosticStatus> }
);
impl DiagnosticArray {
    pub const WARN: u8 = 1;
    pub const ERROR: u8 = 2;

    /// One status from `node`: what happened and why.
    pub fn report(stamp_s: f64, level: u8, node: &str, message: &str, reason: &str) -> Self {
        Self {
            header: Header::new(stamp_s, ""),
            status: vec![DiagnosticStatus {
                level,
                name: node.into(),
                message: message.into(),
                hardware_id: String::new(),
                values: vec![KeyValue {
                    key: "reason".into(),
                    value: reason.into(),
                }],
            }],
        }
    }
}

message!(
    /// `rosgraph_msgs/msg/Clock`: simulated time in lockstep mode.
    Clock = "rosgraph_msgs/msg/Clock", "builtin_interfaces/Time clock\n", { clock: Time }
);

message!(
    /// `loho_msgs/msg/HeightmapInfo`.
    HeightmapInfo = "loho_msgs/msg/HeightmapInfo", include_str!("../msg/loho_msgs/msg/HeightmapInfo.msg"),
    { header: Header, x_min: f64, x_max: f64, y_min: f64, y_max: f64, z_min: f64, z_max: f64,
      pixel_size: f64, height: u32, width: u32 }
);
message!(
    /// `loho_msgs/msg/ArmState`.
    ArmState = "loho_msgs/msg/ArmState", include_str!("../msg/loho_msgs/msg/ArmState.msg"),
    { header: Header, ee_pose: Pose, gripper: f64, holding: bool, joint_names: Vec<String>,
      joint_positions: Vec<f64>, fault: String }
);
message!(
    /// `loho_msgs/msg/Keypose`.
    Keypose = "loho_msgs/msg/Keypose", include_str!("../msg/loho_msgs/msg/Keypose.msg"),
    { pose: Pose, gripper: f64, duration: f64 }
);
message!(
    /// `loho_msgs/msg/ActionChunk`.
    ActionChunk = "loho_msgs/msg/ActionChunk", include_str!("../msg/loho_msgs/msg/ActionChunk.msg"),
    { header: Header, obs_stamp: Time, chunk_id: u64, subtask: String, keyposes: Vec<Keypose> }
);
message!(
    /// `loho_msgs/msg/InferRequest`: the query of `policy/infer`.
    InferRequest = "loho_msgs/msg/InferRequest", include_str!("../msg/loho_msgs/msg/InferRequest.msg"),
    { instruction: String, color: Image, depth: Image, keep_subtask: String, rewrite: bool, seed: u64 }
);
message!(
    /// `loho_msgs/msg/EeCommand`.
    EeCommand = "loho_msgs/msg/EeCommand", include_str!("../msg/loho_msgs/msg/EeCommand.msg"),
    { header: Header, chunk_id: u64, target: Pose, gripper: f64 }
);
message!(
    /// `loho_msgs/msg/ExecStatus`; `state` is one of the constants on [`ExecStatus`].
    ExecStatus = "loho_msgs/msg/ExecStatus", include_str!("../msg/loho_msgs/msg/ExecStatus.msg"),
    { header: Header, chunk_id: u64, state: u8, reason: String }
);

impl ExecStatus {
    pub const IDLE: u8 = 0;
    pub const RUNNING: u8 = 1;
    pub const DONE: u8 = 2;
    pub const FAILED: u8 = 3;
    pub const STOPPED: u8 = 4;
    pub const COMPLETE: u8 = 5;
}

message!(
    /// `loho_msgs/msg/EpisodeEvent`.
    EpisodeEvent = "loho_msgs/msg/EpisodeEvent", include_str!("../msg/loho_msgs/msg/EpisodeEvent.msg"),
    { header: Header, task: String, instruction: String, seed: u64, step: u32, max_steps: u32,
      reward: f64, total_reward: f64, done: bool, success: bool }
);

/// Image encodings the camera topics use.
pub mod encoding {
    pub const RGB8: &str = "rgb8";
    pub const F32C1: &str = "32FC1";
    /// Depth in millimetres, 0 where there is none (RealSense, Orbbec and ZED drivers).
    pub const U16C1: &str = "16UC1";
}

impl Image {
    /// A `rgb8` image from row-major RGB bytes.
    pub fn rgb8(header: Header, width: u32, height: u32, data: Vec<u8>) -> Self {
        Self {
            header,
            height,
            width,
            encoding: encoding::RGB8.into(),
            is_bigendian: 0,
            step: width * 3,
            data,
        }
    }
    /// A `32FC1` image (little-endian floats) from row-major values.
    pub fn f32c1(header: Header, width: u32, height: u32, values: &[f32]) -> Self {
        Self {
            header,
            height,
            width,
            encoding: encoding::F32C1.into(),
            is_bigendian: 0,
            step: width * 4,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
    /// A `16UC1` image (little-endian) from row-major values.
    pub fn u16c1(header: Header, width: u32, height: u32, values: &[u16]) -> Self {
        Self {
            header,
            height,
            width,
            encoding: encoding::U16C1.into(),
            is_bigendian: 0,
            step: width * 2,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
    /// The `32FC1` values, or an error if the encoding or size does not say so.
    pub fn to_f32(&self) -> Result<Vec<f32>, CdrError> {
        self.check(encoding::F32C1, 4)?;
        Ok(self
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    /// Checks that encoding, step and data length agree with the given pixel format.
    pub fn check(&self, encoding: &'static str, bytes_per_pixel: u32) -> Result<(), CdrError> {
        if self.encoding != encoding {
            return Err(CdrError::Invalid {
                what: "image encoding",
                value: format!("{} (expected {encoding})", self.encoding),
            });
        }
        let want = self.width as u64 * bytes_per_pixel as u64;
        if self.step as u64 != want
            || self.data.len() as u64 != want * self.height as u64
            || self.is_bigendian != 0
        {
            return Err(CdrError::Invalid {
                what: "image size",
                value: format!(
                    "{}x{} step {} with {} bytes",
                    self.width,
                    self.height,
                    self.step,
                    self.data.len()
                ),
            });
        }
        Ok(())
    }
}
