//! The `.msg` definition of every message type, read into fields: what a recording's
//! `ros2msg` schemas (`loho_runtime::record`) and the ROS 2 type hashes (`loho_runtime::rmw`) are
//! built from, so both follow the same text the Rust structs are checked against.

use crate::msg::*;

/// (type name, own definition) of every message type.
pub fn definitions() -> Vec<(&'static str, &'static str)> {
    fn d<T: Message>() -> (&'static str, &'static str) {
        (T::TYPE_NAME, T::DEFINITION)
    }
    vec![
        d::<Time>(),
        d::<Header>(),
        d::<StringMsg>(),
        d::<BoolMsg>(),
        d::<Point>(),
        d::<Quaternion>(),
        d::<Pose>(),
        d::<Image>(),
        d::<RegionOfInterest>(),
        d::<CameraInfo>(),
        d::<KeyValue>(),
        d::<DiagnosticStatus>(),
        d::<DiagnosticArray>(),
        d::<Clock>(),
        d::<HeightmapInfo>(),
        d::<ArmState>(),
        d::<Keypose>(),
        d::<ActionChunk>(),
        d::<InferRequest>(),
        d::<EeCommand>(),
        d::<ExecStatus>(),
        d::<EpisodeEvent>(),
    ]
}

/// The definition of `type_name` (`pkg/msg/Name`), if loho knows the type.
pub fn definition(type_name: &str) -> Option<&'static str> {
    definitions()
        .into_iter()
        .find(|(t, _)| *t == type_name)
        .map(|(_, d)| d)
}

/// The `.msg` primitive types.
pub const PRIMITIVES: &[&str] = &[
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
    "uint32", "int64", "uint64", "string", "wstring",
];

/// One field of a definition (constants are not fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    pub name: String,
    /// A primitive (`float64`, `string`, …) or a message type's full name (`pkg/msg/Name`).
    pub ty: String,
    /// `string<=N`: the bound.
    pub string_bound: Option<usize>,
    pub array: Array,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Array {
    Single,
    /// `T[N]`
    Fixed(usize),
    /// `T[<=N]`
    Bounded(usize),
    /// `T[]`
    Unbounded,
}

impl FieldDef {
    /// The message type of a field that holds one (or an array of them).
    pub fn nested(&self) -> Option<&str> {
        (!PRIMITIVES.contains(&self.ty.as_str())).then_some(self.ty.as_str())
    }
}

/// The fields of `type_name` in order, its nested types named in full; `None` if the type
/// or a line of its definition is unknown.
pub fn fields(type_name: &str) -> Option<Vec<FieldDef>> {
    let package = type_name.split('/').next().unwrap_or("");
    let mut out = vec![];
    for line in definition(type_name)?.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let (Some(ty), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        // `byte OK=0`, `int32 X = 1`: a constant.
        if name.contains('=') || words.next().is_some_and(|w| w.starts_with('=')) {
            continue;
        }
        let (base, array) = match ty.split_once('[') {
            None => (ty, Array::Single),
            Some((base, rest)) => {
                let inside = rest.strip_suffix(']')?;
                let array = match inside.strip_prefix("<=") {
                    _ if inside.is_empty() => Array::Unbounded,
                    Some(n) => Array::Bounded(n.parse().ok()?),
                    None => Array::Fixed(inside.parse().ok()?),
                };
                (base, array)
            }
        };
        let (base, string_bound) = match base.split_once("<=") {
            Some((b, n)) => (b, Some(n.parse().ok()?)),
            None => (base, None),
        };
        let ty = if PRIMITIVES.contains(&base) {
            base.to_string()
        } else {
            match base.split_once('/') {
                Some((pkg, name)) => format!("{pkg}/msg/{name}"),
                None => format!("{package}/msg/{base}"),
            }
        };
        out.push(FieldDef {
            name: name.into(),
            ty,
            string_bound,
            array,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_arrays_nested_types_and_skip_constants() {
        let info = fields("sensor_msgs/msg/CameraInfo").unwrap();
        let names: Vec<_> = info.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, CameraInfo::FIELDS);
        assert_eq!(info[0].nested(), Some("std_msgs/msg/Header"));
        assert_eq!(info[4].array, Array::Unbounded);
        assert_eq!(info[5].array, Array::Fixed(9));
        assert_eq!(info[10].ty, "sensor_msgs/msg/RegionOfInterest");
        let status = fields("diagnostic_msgs/msg/DiagnosticStatus").unwrap();
        assert_eq!(
            status.len(),
            5,
            "constants OK, WARN, ERROR, STALE are not fields"
        );
        assert_eq!(status[0].ty, "byte");
        for (ty, _) in definitions() {
            let f = fields(ty).unwrap();
            assert_eq!(
                f.len(),
                f.iter()
                    .map(|f| &f.name)
                    .collect::<std::collections::HashSet<_>>()
                    .len(),
                "{ty}"
            );
            for n in f.iter().filter_map(FieldDef::nested) {
                assert!(
                    definition(n).is_some(),
                    "{ty} uses {n}, which is not defined"
                );
            }
        }
    }

    /// The ROS 2 package's build lists exactly the loho types compiled in here.
    #[test]
    fn the_ros2_package_builds_every_loho_type() {
        let cmake = include_str!("../msg/loho_msgs/CMakeLists.txt");
        let listed = cmake.matches(".msg\"").count();
        let ours: Vec<_> = definitions()
            .into_iter()
            .filter_map(|(t, _)| t.strip_prefix("loho_msgs/msg/"))
            .collect();
        assert_eq!(listed, ours.len(), "{cmake}");
        for name in ours {
            assert!(
                cmake.contains(&format!("\"msg/{name}.msg\"")),
                "{name} missing"
            );
        }
    }
}
