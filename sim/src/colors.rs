//! The 11 Tableau colours of Ravens; which of them each split draws from is
//! [`crate::split::Split::colors`].

/// A named palette colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Color {
    pub name: &'static str,
    pub rgb: [u8; 3],
}

const fn c(name: &'static str, r: u8, g: u8, b: u8) -> Color {
    Color {
        name,
        rgb: [r, g, b],
    }
}

/// All 11 colours, in the palette's dictionary order (distractor walks depend on it).
pub const ALL: [Color; 11] = [
    c("blue", 78, 121, 167),
    c("red", 255, 87, 89),
    c("green", 89, 169, 78),
    c("orange", 242, 142, 43),
    c("yellow", 237, 201, 72),
    c("purple", 176, 122, 161),
    c("pink", 255, 157, 167),
    c("cyan", 118, 183, 178),
    c("brown", 156, 117, 95),
    c("white", 255, 255, 255),
    c("gray", 186, 176, 172),
];

/// The colour of the table (Ravens' workspace plane, RGBA 0.2, 0.2, 0.2).
pub const TABLE: [u8; 3] = [51, 51, 51];

pub fn by_name(name: &str) -> Option<Color> {
    ALL.iter().copied().find(|c| c.name == name)
}
