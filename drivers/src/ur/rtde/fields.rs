//! The controller's variables: their types and values on the wire, the table of names
//! the controller knows, and the recipes that order them in a data package.

use super::{command, Cursor, DataPackage, RtdeError, IN_USE, NOT_FOUND};

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
/// [`NOT_FOUND`]. Registers ([`Register`]) are named in both directions; inputs are
/// readable as outputs too.
pub fn field_type(dir: Direction, name: &str) -> Option<Type> {
    let table = |t: &[(&str, Type)]| t.iter().find(|(n, _)| *n == name).map(|&(_, t)| t);
    let register = Register::parse(name)
        .filter(|r| r.dir == dir || dir == Direction::Output)
        .map(|r| r.kind);
    register.or_else(|| match dir {
        Direction::Input => table(INPUTS),
        Direction::Output => table(OUTPUTS),
    })
}

/// A general-purpose register: `input_`/`output_` + `int_register_N` (INT32) or
/// `double_register_N` (DOUBLE) for N in 0..=47, or `bit_register_N` (BOOL) for N in
/// 64..=127.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    /// Who writes it: a client (`Input`) or the controller's program (`Output`).
    pub dir: Direction,
    pub kind: Type,
    pub n: usize,
}

impl Register {
    /// `name` as a register, if it is one.
    pub fn parse(name: &str) -> Option<Register> {
        let (dir, rest) = match name.strip_prefix("input_") {
            Some(rest) => (Direction::Input, rest),
            None => (Direction::Output, name.strip_prefix("output_")?),
        };
        let kinds = [
            ("int_register_", 0..=47, Type::Int32),
            ("double_register_", 0..=47, Type::Double),
            ("bit_register_", 64..=127, Type::Bool),
        ];
        let (number, range, kind) = kinds
            .into_iter()
            .find_map(|(k, range, t)| Some((rest.strip_prefix(k)?, range, t)))?;
        let n: usize = number.parse().ok()?;
        (range.contains(&n) && n.to_string() == number).then_some(Register { dir, kind, n })
    }
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
