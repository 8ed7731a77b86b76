//! The RTDE wire protocol (Real-Time Data Exchange, protocol version 2), as Universal
//! Robots' RTDE guide and their Python client (`rtde/rtde.py`, `rtde/serialize.py`)
//! define it: TCP port 30004, every packet a big-endian `u16` size (header included),
//! a `u8` command and a payload.
//!
//! Both ends live here: [`Request`] is what a client sends, [`Reply`] what the controller
//! sends, so the driver and the emulator share one encoder and one decoder. Data packages
//! carry values in the order of a negotiated [`Recipe`]; [`field_type`] is the
//! controller's table of variable names and types. Every malformed packet decodes to an
//! [`RtdeError`], never a panic.

use std::io::{self, Read, Write};

use thiserror::Error;

/// The controller's RTDE port.
pub const PORT: u16 = 30004;
/// The protocol version loho speaks.
pub const PROTOCOL_VERSION: u16 = 2;
/// "There is a maximum limit of 2048 bytes to represent the list of inputs/outputs field
/// names" (RTDE guide).
pub const MAX_NAMES: usize = 2048;
/// The largest packet either end accepts: a setup request with the longest name list. A
/// peer announcing more is not speaking RTDE.
pub const MAX_PACKET: usize = MAX_NAMES + 64;

/// Command bytes (`class Command` of the Python client).
pub mod command {
    pub const REQUEST_PROTOCOL_VERSION: u8 = b'V';
    pub const GET_URCONTROL_VERSION: u8 = b'v';
    pub const TEXT_MESSAGE: u8 = b'M';
    pub const DATA_PACKAGE: u8 = b'U';
    pub const SETUP_OUTPUTS: u8 = b'O';
    pub const SETUP_INPUTS: u8 = b'I';
    pub const START: u8 = b'S';
    pub const PAUSE: u8 = b'P';
}

/// What the controller answers for a name it does not know, and for an input another
/// client already writes.
pub const NOT_FOUND: &str = "NOT_FOUND";
pub const IN_USE: &str = "IN_USE";

#[derive(Debug, Error)]
pub enum RtdeError {
    #[error("RTDE connection: {0}")]
    Io(#[from] io::Error),
    #[error("the peer closed the RTDE connection")]
    Closed,
    #[error("RTDE packet size {0} is below its 3-byte header")]
    Undersized(u16),
    #[error("RTDE packet of {0} bytes is larger than any RTDE packet ({MAX_PACKET})")]
    Oversized(usize),
    #[error("RTDE packet '{}' is {got} bytes, shorter than its fields", *command as char)]
    Short { command: u8, got: usize },
    #[error("RTDE packet '{}' has {extra} bytes after its fields", *command as char)]
    Trailing { command: u8, extra: usize },
    #[error("unknown RTDE command byte {0:#04x}")]
    UnknownCommand(u8),
    #[error("expected RTDE '{}', got '{}'", *expected as char, *got as char)]
    Unexpected { expected: u8, got: u8 },
    #[error("unknown RTDE type {0:?}")]
    UnknownType(String),
    #[error("RTDE text is not UTF-8")]
    Text,
    #[error("RTDE data package for recipe {got}, expected recipe {expected}")]
    Recipe { expected: u8, got: u8 },
    #[error("RTDE value {index} is {got}, the recipe says {expected}")]
    ValueType {
        index: usize,
        expected: &'static str,
        got: &'static str,
    },
    #[error("the controller refused: {0}")]
    Refused(String),
}

/// The types a variable can have, by their names on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Bool,
    Uint8,
    Uint32,
    Uint64,
    Int32,
    Double,
    Vector3d,
    Vector6d,
    Vector6Int32,
    Vector6Uint32,
}

impl Type {
    const ALL: [Type; 10] = [
        Type::Bool,
        Type::Uint8,
        Type::Uint32,
        Type::Uint64,
        Type::Int32,
        Type::Double,
        Type::Vector3d,
        Type::Vector6d,
        Type::Vector6Int32,
        Type::Vector6Uint32,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Type::Bool => "BOOL",
            Type::Uint8 => "UINT8",
            Type::Uint32 => "UINT32",
            Type::Uint64 => "UINT64",
            Type::Int32 => "INT32",
            Type::Double => "DOUBLE",
            Type::Vector3d => "VECTOR3D",
            Type::Vector6d => "VECTOR6D",
            Type::Vector6Int32 => "VECTOR6INT32",
            Type::Vector6Uint32 => "VECTOR6UINT32",
        }
    }

    pub fn parse(s: &str) -> Result<Type, RtdeError> {
        Type::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| RtdeError::UnknownType(s.into()))
    }
}

/// One variable's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Bool(bool),
    Uint8(u8),
    Uint32(u32),
    Uint64(u64),
    Int32(i32),
    Double(f64),
    Vector3d([f64; 3]),
    Vector6d([f64; 6]),
    Vector6Int32([i32; 6]),
    Vector6Uint32([u32; 6]),
}

impl Value {
    pub fn type_of(&self) -> Type {
        match self {
            Value::Bool(_) => Type::Bool,
            Value::Uint8(_) => Type::Uint8,
            Value::Uint32(_) => Type::Uint32,
            Value::Uint64(_) => Type::Uint64,
            Value::Int32(_) => Type::Int32,
            Value::Double(_) => Type::Double,
            Value::Vector3d(_) => Type::Vector3d,
            Value::Vector6d(_) => Type::Vector6d,
            Value::Vector6Int32(_) => Type::Vector6Int32,
            Value::Vector6Uint32(_) => Type::Vector6Uint32,
        }
    }

    /// The value of a variable nobody wrote yet.
    pub fn zero(t: Type) -> Value {
        match t {
            Type::Bool => Value::Bool(false),
            Type::Uint8 => Value::Uint8(0),
            Type::Uint32 => Value::Uint32(0),
            Type::Uint64 => Value::Uint64(0),
            Type::Int32 => Value::Int32(0),
            Type::Double => Value::Double(0.0),
            Type::Vector3d => Value::Vector3d([0.0; 3]),
            Type::Vector6d => Value::Vector6d([0.0; 6]),
            Type::Vector6Int32 => Value::Vector6Int32([0; 6]),
            Type::Vector6Uint32 => Value::Vector6Uint32([0; 6]),
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        match *self {
            Value::Bool(b) => out.push(b as u8),
            Value::Uint8(v) => out.push(v),
            Value::Uint32(v) => out.extend(v.to_be_bytes()),
            Value::Uint64(v) => out.extend(v.to_be_bytes()),
            Value::Int32(v) => out.extend(v.to_be_bytes()),
            Value::Double(v) => out.extend(v.to_be_bytes()),
            Value::Vector3d(v) => v.iter().for_each(|x| out.extend(x.to_be_bytes())),
            Value::Vector6d(v) => v.iter().for_each(|x| out.extend(x.to_be_bytes())),
            Value::Vector6Int32(v) => v.iter().for_each(|x| out.extend(x.to_be_bytes())),
            Value::Vector6Uint32(v) => v.iter().for_each(|x| out.extend(x.to_be_bytes())),
        }
    }

    fn take(t: Type, r: &mut Cursor) -> Result<Value, RtdeError> {
        Ok(match t {
            Type::Bool => Value::Bool(r.u8()? != 0),
            Type::Uint8 => Value::Uint8(r.u8()?),
            Type::Uint32 => Value::Uint32(r.u32()?),
            Type::Uint64 => Value::Uint64(u64::from_be_bytes(r.array()?)),
            Type::Int32 => Value::Int32(i32::from_be_bytes(r.array()?)),
            Type::Double => Value::Double(r.f64()?),
            Type::Vector3d => Value::Vector3d([r.f64()?, r.f64()?, r.f64()?]),
            Type::Vector6d => {
                let mut v = [0.0; 6];
                for x in &mut v {
                    *x = r.f64()?;
                }
                Value::Vector6d(v)
            }
            Type::Vector6Int32 => {
                let mut v = [0; 6];
                for x in &mut v {
                    *x = i32::from_be_bytes(r.array()?);
                }
                Value::Vector6Int32(v)
            }
            Type::Vector6Uint32 => {
                let mut v = [0; 6];
                for x in &mut v {
                    *x = r.u32()?;
                }
                Value::Vector6Uint32(v)
            }
        })
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Double(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_i32(&self) -> Option<i32> {
        match *self {
            Value::Int32(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_u32(&self) -> Option<u32> {
        match *self {
            Value::Uint32(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Uint64(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_vec6(&self) -> Option<[f64; 6]> {
        match *self {
            Value::Vector6d(v) => Some(v),
            _ => None,
        }
    }
}

/// Direction of a variable: the controller's outputs, or inputs a client writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Output,
    Input,
}

/// The controller's outputs by name (RTDE guide; UR Client Library `data_package.cpp`).
const OUTPUTS: &[(&str, Type)] = &[
    ("timestamp", Type::Double),
    ("target_q", Type::Vector6d),
    ("target_qd", Type::Vector6d),
    ("target_qdd", Type::Vector6d),
    ("target_current", Type::Vector6d),
    ("target_moment", Type::Vector6d),
    ("actual_q", Type::Vector6d),
    ("actual_qd", Type::Vector6d),
    ("actual_current", Type::Vector6d),
    ("joint_control_output", Type::Vector6d),
    ("actual_TCP_pose", Type::Vector6d),
    ("actual_TCP_speed", Type::Vector6d),
    ("actual_TCP_force", Type::Vector6d),
    ("target_TCP_pose", Type::Vector6d),
    ("target_TCP_speed", Type::Vector6d),
    ("actual_digital_input_bits", Type::Uint64),
    ("joint_temperatures", Type::Vector6d),
    ("actual_execution_time", Type::Double),
    ("robot_mode", Type::Int32),
    ("joint_mode", Type::Vector6Int32),
    ("safety_mode", Type::Int32),
    ("safety_status", Type::Int32),
    ("actual_tool_accelerometer", Type::Vector3d),
    ("speed_scaling", Type::Double),
    ("target_speed_fraction", Type::Double),
    ("actual_momentum", Type::Double),
    ("actual_main_voltage", Type::Double),
    ("actual_robot_voltage", Type::Double),
    ("actual_robot_current", Type::Double),
    ("actual_joint_voltage", Type::Vector6d),
    ("actual_digital_output_bits", Type::Uint64),
    ("runtime_state", Type::Uint32),
    ("elbow_position", Type::Vector3d),
    ("elbow_velocity", Type::Vector3d),
    ("robot_status_bits", Type::Uint32),
    ("safety_status_bits", Type::Uint32),
    ("analog_io_types", Type::Uint32),
    ("standard_analog_input0", Type::Double),
    ("standard_analog_input1", Type::Double),
    ("standard_analog_output0", Type::Double),
    ("standard_analog_output1", Type::Double),
    ("io_current", Type::Double),
    ("euromap67_input_bits", Type::Uint32),
    ("euromap67_output_bits", Type::Uint32),
    ("euromap67_24V_voltage", Type::Double),
    ("euromap67_24V_current", Type::Double),
    ("tool_mode", Type::Uint32),
    ("tool_analog_input_types", Type::Uint32),
    ("tool_analog_input0", Type::Double),
    ("tool_analog_input1", Type::Double),
    ("tool_output_voltage", Type::Int32),
    ("tool_output_current", Type::Double),
    ("tool_temperature", Type::Double),
    ("tcp_force_scalar", Type::Double),
    ("output_bit_registers0_to_31", Type::Uint32),
    ("output_bit_registers32_to_63", Type::Uint32),
    ("tool_output_mode", Type::Uint8),
    ("tool_digital_output0_mode", Type::Uint8),
    ("tool_digital_output1_mode", Type::Uint8),
    ("input_bit_registers0_to_31", Type::Uint32),
    ("input_bit_registers32_to_63", Type::Uint32),
];

/// The inputs a client may write by name.
const INPUTS: &[(&str, Type)] = &[
    ("speed_slider_mask", Type::Uint32),
    ("speed_slider_fraction", Type::Double),
    ("standard_digital_output_mask", Type::Uint8),
    ("standard_digital_output", Type::Uint8),
    ("configurable_digital_output_mask", Type::Uint8),
    ("configurable_digital_output", Type::Uint8),
    ("tool_digital_output_mask", Type::Uint8),
    ("tool_digital_output", Type::Uint8),
    ("standard_analog_output_mask", Type::Uint8),
    ("standard_analog_output_type", Type::Uint8),
    ("standard_analog_output_0", Type::Double),
    ("standard_analog_output_1", Type::Double),
    ("external_force_torque", Type::Vector6d),
    ("input_bit_registers0_to_31", Type::Uint32),
    ("input_bit_registers32_to_63", Type::Uint32),
];

/// The type of variable `name` in `dir`, or `None` where the controller answers
/// [`NOT_FOUND`]. Registers: `input_/output_int_register_N` (INT32) and
/// `input_/output_double_register_N` (DOUBLE) for N in 0..=47, `input_/output_bit_register_N`
/// (BOOL) for N in 64..=127. Inputs are readable as outputs too.
pub fn field_type(dir: Direction, name: &str) -> Option<Type> {
    let table = |t: &[(&str, Type)]| t.iter().find(|(n, _)| *n == name).map(|&(_, t)| t);
    match dir {
        Direction::Input => register(name, "input_").or_else(|| table(INPUTS)),
        Direction::Output => register(name, "output_")
            .or_else(|| register(name, "input_"))
            .or_else(|| table(OUTPUTS)),
    }
}

/// The type of register `name` (`<prefix>int_register_7`, …), if it is one.
fn register(name: &str, prefix: &str) -> Option<Type> {
    let rest = name.strip_prefix(prefix)?;
    let kinds = [
        ("int_register_", 0..=47, Type::Int32),
        ("double_register_", 0..=47, Type::Double),
        ("bit_register_", 64..=127, Type::Bool),
    ];
    for (kind, range, t) in kinds {
        if let Some(n) = rest.strip_prefix(kind) {
            let k: u32 = n.parse().ok()?;
            return (range.contains(&k) && k.to_string() == n).then_some(t);
        }
    }
    None
}

/// A negotiated recipe: its id and the variables of every data package in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub id: u8,
    pub names: Vec<String>,
    pub types: Vec<Type>,
}

impl Recipe {
    /// The recipe the controller answered to `names`, or why it is unusable (a name it
    /// did not find, an input in use by another client).
    pub fn accepted(id: u8, names: &[&str], types: &[String]) -> Result<Recipe, RtdeError> {
        if types.len() != names.len() {
            return Err(RtdeError::Refused(format!(
                "{} types for {} names",
                types.len(),
                names.len()
            )));
        }
        let bad: Vec<String> = names
            .iter()
            .zip(types)
            .filter(|(_, t)| *t == NOT_FOUND || *t == IN_USE)
            .map(|(n, t)| format!("{n}: {t}"))
            .collect();
        if !bad.is_empty() {
            return Err(RtdeError::Refused(format!("recipe: {}", bad.join(", "))));
        }
        Ok(Recipe {
            id,
            names: names.iter().map(|s| s.to_string()).collect(),
            types: types
                .iter()
                .map(|t| Type::parse(t))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The index of variable `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// A data package of this recipe.
    pub fn package(&self, values: &[Value]) -> Result<DataPackage, RtdeError> {
        let mut bytes = Vec::new();
        for (i, (v, t)) in values.iter().zip(&self.types).enumerate() {
            if v.type_of() != *t {
                return Err(RtdeError::ValueType {
                    index: i,
                    expected: t.name(),
                    got: v.type_of().name(),
                });
            }
            v.put(&mut bytes);
        }
        if values.len() != self.types.len() {
            return Err(RtdeError::Refused(format!(
                "{} values for a recipe of {}",
                values.len(),
                self.types.len()
            )));
        }
        Ok(DataPackage {
            recipe: self.id,
            bytes,
        })
    }

    /// The values of a data package of this recipe.
    pub fn values(&self, p: &DataPackage) -> Result<Vec<Value>, RtdeError> {
        if p.recipe != self.id {
            return Err(RtdeError::Recipe {
                expected: self.id,
                got: p.recipe,
            });
        }
        let mut r = Cursor::new(command::DATA_PACKAGE, &p.bytes);
        let values = self
            .types
            .iter()
            .map(|&t| Value::take(t, &mut r))
            .collect::<Result<_, _>>()?;
        r.finish()?;
        Ok(values)
    }
}

/// A data package: its recipe id and the packed values (decoded by [`Recipe::values`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DataPackage {
    pub recipe: u8,
    pub bytes: Vec<u8>,
}

/// A text message (protocol v2 layout).
#[derive(Debug, Clone, PartialEq)]
pub struct TextMessage {
    pub message: String,
    pub source: String,
    /// 0 exception, 1 error, 2 warning, 3 info.
    pub level: u8,
}

impl TextMessage {
    pub const EXCEPTION: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const WARNING: u8 = 2;
    pub const INFO: u8 = 3;
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    ProtocolVersion(u16),
    ControllerVersion,
    SetupOutputs { frequency: f64, names: Vec<String> },
    SetupInputs { names: Vec<String> },
    Start,
    Pause,
    Data(DataPackage),
    Text(TextMessage),
}

/// The controller's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub bugfix: u32,
    pub build: u32,
}

impl Version {
    /// The rate of the controller's real-time loop: 500 Hz on e-Series (major 5 and
    /// later), 125 Hz on CB3.
    pub fn rate_hz(&self) -> f64 {
        if self.major > 3 {
            500.0
        } else {
            125.0
        }
    }
}

/// What the controller sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    ProtocolVersion { accepted: bool },
    ControllerVersion(Version),
    SetupOutputs { recipe: u8, types: Vec<String> },
    SetupInputs { recipe: u8, types: Vec<String> },
    Start { accepted: bool },
    Pause { accepted: bool },
    Data(DataPackage),
    Text(TextMessage),
}

impl Request {
    pub fn command(&self) -> u8 {
        use command::*;
        match self {
            Request::ProtocolVersion(_) => REQUEST_PROTOCOL_VERSION,
            Request::ControllerVersion => GET_URCONTROL_VERSION,
            Request::SetupOutputs { .. } => SETUP_OUTPUTS,
            Request::SetupInputs { .. } => SETUP_INPUTS,
            Request::Start => START,
            Request::Pause => PAUSE,
            Request::Data(_) => DATA_PACKAGE,
            Request::Text(_) => TEXT_MESSAGE,
        }
    }

    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Request::ProtocolVersion(v) => out.extend(v.to_be_bytes()),
            Request::ControllerVersion | Request::Start | Request::Pause => {}
            Request::SetupOutputs { frequency, names } => {
                out.extend(frequency.to_be_bytes());
                out.extend(names.join(",").as_bytes());
            }
            Request::SetupInputs { names } => out.extend(names.join(",").as_bytes()),
            Request::Data(p) => p.put(&mut out),
            Request::Text(t) => t.put(&mut out),
        }
        out
    }

    pub fn decode(command: u8, payload: &[u8]) -> Result<Request, RtdeError> {
        use command::*;
        let mut r = Cursor::new(command, payload);
        let req = match command {
            REQUEST_PROTOCOL_VERSION => Request::ProtocolVersion(r.u16()?),
            GET_URCONTROL_VERSION => Request::ControllerVersion,
            SETUP_OUTPUTS => Request::SetupOutputs {
                frequency: r.f64()?,
                names: r.names()?,
            },
            SETUP_INPUTS => Request::SetupInputs { names: r.names()? },
            START => Request::Start,
            PAUSE => Request::Pause,
            DATA_PACKAGE => Request::Data(DataPackage::take(&mut r)?),
            TEXT_MESSAGE => Request::Text(TextMessage::take(&mut r)?),
            other => return Err(RtdeError::UnknownCommand(other)),
        };
        r.finish()?;
        Ok(req)
    }
}

impl Reply {
    pub fn command(&self) -> u8 {
        use command::*;
        match self {
            Reply::ProtocolVersion { .. } => REQUEST_PROTOCOL_VERSION,
            Reply::ControllerVersion(_) => GET_URCONTROL_VERSION,
            Reply::SetupOutputs { .. } => SETUP_OUTPUTS,
            Reply::SetupInputs { .. } => SETUP_INPUTS,
            Reply::Start { .. } => START,
            Reply::Pause { .. } => PAUSE,
            Reply::Data(_) => DATA_PACKAGE,
            Reply::Text(_) => TEXT_MESSAGE,
        }
    }

    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Reply::ProtocolVersion { accepted }
            | Reply::Start { accepted }
            | Reply::Pause { accepted } => out.push(*accepted as u8),
            Reply::ControllerVersion(v) => {
                for x in [v.major, v.minor, v.bugfix, v.build] {
                    out.extend(x.to_be_bytes());
                }
            }
            Reply::SetupOutputs { recipe, types } | Reply::SetupInputs { recipe, types } => {
                out.push(*recipe);
                out.extend(types.join(",").as_bytes());
            }
            Reply::Data(p) => p.put(&mut out),
            Reply::Text(t) => t.put(&mut out),
        }
        out
    }

    pub fn decode(command: u8, payload: &[u8]) -> Result<Reply, RtdeError> {
        use command::*;
        let mut r = Cursor::new(command, payload);
        let reply = match command {
            REQUEST_PROTOCOL_VERSION => Reply::ProtocolVersion {
                accepted: r.u8()? != 0,
            },
            GET_URCONTROL_VERSION => Reply::ControllerVersion(Version {
                major: r.u32()?,
                minor: r.u32()?,
                bugfix: r.u32()?,
                build: r.u32()?,
            }),
            SETUP_OUTPUTS => Reply::SetupOutputs {
                recipe: r.u8()?,
                types: r.names()?,
            },
            SETUP_INPUTS => Reply::SetupInputs {
                recipe: r.u8()?,
                types: r.names()?,
            },
            START => Reply::Start {
                accepted: r.u8()? != 0,
            },
            PAUSE => Reply::Pause {
                accepted: r.u8()? != 0,
            },
            DATA_PACKAGE => Reply::Data(DataPackage::take(&mut r)?),
            TEXT_MESSAGE => Reply::Text(TextMessage::take(&mut r)?),
            other => return Err(RtdeError::UnknownCommand(other)),
        };
        r.finish()?;
        Ok(reply)
    }
}

impl DataPackage {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(self.recipe);
        out.extend(&self.bytes);
    }
    fn take(r: &mut Cursor) -> Result<DataPackage, RtdeError> {
        Ok(DataPackage {
            recipe: r.u8()?,
            bytes: r.rest().to_vec(),
        })
    }
}

impl TextMessage {
    fn put(&self, out: &mut Vec<u8>) {
        for s in [&self.message, &self.source] {
            // A u8 length: longer texts are cut at a character boundary.
            let mut n = s.len().min(255);
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            out.push(n as u8);
            out.extend(&s.as_bytes()[..n]);
        }
        out.push(self.level);
    }
    fn take(r: &mut Cursor) -> Result<TextMessage, RtdeError> {
        let text = |r: &mut Cursor| -> Result<String, RtdeError> {
            let n = r.u8()? as usize;
            String::from_utf8(r.bytes(n)?.to_vec()).map_err(|_| RtdeError::Text)
        };
        Ok(TextMessage {
            message: text(r)?,
            source: text(r)?,
            level: r.u8()?,
        })
    }
}

/// One packet on the wire: header and payload.
pub fn encode(command: u8, payload: &[u8]) -> Result<Vec<u8>, RtdeError> {
    let size = payload.len() + 3;
    if size > MAX_PACKET {
        return Err(RtdeError::Oversized(size));
    }
    let mut out = Vec::with_capacity(size);
    out.extend((size as u16).to_be_bytes());
    out.push(command);
    out.extend(payload);
    Ok(out)
}

/// Writes one packet (one `write_all`, so a packet is never interleaved with another
/// writer's on a shared socket).
pub fn write_packet(w: &mut impl Write, command: u8, payload: &[u8]) -> Result<(), RtdeError> {
    w.write_all(&encode(command, payload)?)?;
    Ok(())
}

/// Reads one packet: its command and payload. A size below the header or above
/// [`MAX_PACKET`] is an error before any payload is read.
pub fn read_packet(r: &mut impl Read) -> Result<(u8, Vec<u8>), RtdeError> {
    let mut header = [0u8; 3];
    read_exact(r, &mut header)?;
    let size = u16::from_be_bytes([header[0], header[1]]);
    if size < 3 {
        return Err(RtdeError::Undersized(size));
    }
    if size as usize > MAX_PACKET {
        return Err(RtdeError::Oversized(size as usize));
    }
    let mut payload = vec![0; size as usize - 3];
    read_exact(r, &mut payload)?;
    Ok((header[2], payload))
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), RtdeError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => RtdeError::Closed,
        _ => RtdeError::Io(e),
    })
}

/// Reads big-endian fields off a payload; running short is an error, not a panic.
struct Cursor<'a> {
    command: u8,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(command: u8, buf: &'a [u8]) -> Self {
        Self {
            command,
            buf,
            pos: 0,
        }
    }
    fn short(&self) -> RtdeError {
        RtdeError::Short {
            command: self.command,
            got: self.buf.len(),
        }
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], RtdeError> {
        let Some(b) = self.buf.get(self.pos..self.pos + n) else {
            return Err(self.short());
        };
        self.pos += n;
        Ok(b)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RtdeError> {
        Ok(self.bytes(N)?.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> Result<u8, RtdeError> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, RtdeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, RtdeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn f64(&mut self) -> Result<f64, RtdeError> {
        Ok(f64::from_be_bytes(self.array()?))
    }
    fn rest(&mut self) -> &'a [u8] {
        let r = &self.buf[self.pos..];
        self.pos = self.buf.len();
        r
    }
    /// A comma-joined list (names or types); empty payload, empty list.
    fn names(&mut self) -> Result<Vec<String>, RtdeError> {
        let text = std::str::from_utf8(self.rest()).map_err(|_| RtdeError::Text)?;
        Ok(if text.is_empty() {
            vec![]
        } else {
            text.split(',').map(str::to_string).collect()
        })
    }
    fn finish(&self) -> Result<(), RtdeError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            extra => Err(RtdeError::Trailing {
                command: self.command,
                extra,
            }),
        }
    }
}
