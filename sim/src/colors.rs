//! The 11 Tableau colours of Ravens (which of them each split draws from is
//! [`crate::split::Split::colors`]), and palette files that replace them
//! (`--palette FILE`, docs/simulator.md, "Palettes").

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

/// The fewest colours a palette may have: as many as a split of the benchmark draws from,
/// which the tasks' scenes need (B and F put up to 7 blocks of different colours).
pub const MIN_COLORS: usize = 7;

#[derive(Debug, thiserror::Error)]
pub enum PaletteError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {reason} (expected one `name = [r, g, b]` per colour, 0-255)")]
    Format { origin: String, reason: String },
    #[error("{origin}: colour {name:?} is {value}: give [r, g, b], each a whole number 0-255")]
    BadRgb {
        origin: String,
        name: String,
        value: String,
    },
    #[error("{origin}: colour name {name:?}: use lowercase letters, with spaces or hyphens between words")]
    BadName { origin: String, name: String },
    #[error("{origin}: {name:?} and {other:?} are the same colour ({rgb:?}): a scene could not tell them apart")]
    SameRgb {
        origin: String,
        name: String,
        other: String,
        rgb: [u8; 3],
    },
    #[error("{origin}: {n} colours; the tasks need at least {MIN_COLORS}")]
    TooFew { origin: String, n: usize },
}

/// The colours scenes are drawn from; a file's in the order of their names.
#[derive(Debug, Clone, PartialEq)]
pub struct Palette {
    colors: Vec<Color>,
}

impl Palette {
    /// The benchmark's eleven.
    pub fn benchmark() -> Self {
        Self {
            colors: ALL.to_vec(),
        }
    }

    pub fn colors(&self) -> &[Color] {
        &self.colors
    }

    pub fn read(path: &std::path::Path) -> Result<Self, PaletteError> {
        let text = std::fs::read_to_string(path).map_err(|source| PaletteError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// A palette file's text (`origin` names it in errors). Names live as long as the
    /// process (a palette is read once), so a colour stays `Copy` like the benchmark's.
    pub fn parse(text: &str, origin: &str) -> Result<Self, PaletteError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| PaletteError::Format {
                    origin: origin.into(),
                    reason: e.message().to_string(),
                })?;
        let mut colors: Vec<Color> = Vec::new();
        for (name, value) in &table {
            let words = name.split([' ', '-']);
            if name.is_empty()
                || !words
                    .into_iter()
                    .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()))
            {
                return Err(PaletteError::BadName {
                    origin: origin.into(),
                    name: name.clone(),
                });
            }
            let rgb = value
                .as_array()
                .filter(|a| a.len() == 3)
                .and_then(|a| {
                    let v: Option<Vec<u8>> = a
                        .iter()
                        .map(|x| x.as_integer().and_then(|i| u8::try_from(i).ok()))
                        .collect();
                    v.map(|v| [v[0], v[1], v[2]])
                })
                .ok_or_else(|| PaletteError::BadRgb {
                    origin: origin.into(),
                    name: name.clone(),
                    value: value.to_string(),
                })?;
            if let Some(other) = colors.iter().find(|c| c.rgb == rgb) {
                return Err(PaletteError::SameRgb {
                    origin: origin.into(),
                    name: name.clone(),
                    other: other.name.into(),
                    rgb,
                });
            }
            colors.push(Color {
                name: Box::leak(name.clone().into_boxed_str()),
                rgb,
            });
        }
        if colors.len() < MIN_COLORS {
            return Err(PaletteError::TooFew {
                origin: origin.into(),
                n: colors.len(),
            });
        }
        Ok(Self { colors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EIGHT: &str = "teal = [0, 128, 128]\nmaroon = [128, 0, 0]\nnavy = [0, 0, 128]\n\
        olive = [128, 128, 0]\nlime = [0, 255, 0]\nviolet = [238, 130, 238]\n\
        gold = [255, 215, 0]\n\"light salmon\" = [255, 160, 122]\n";

    #[test]
    fn a_file_is_its_colours_in_name_order() {
        let p = Palette::parse(EIGHT, "p.toml").unwrap();
        let names: Vec<&str> = p.colors().iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "gold",
                "light salmon",
                "lime",
                "maroon",
                "navy",
                "olive",
                "teal",
                "violet"
            ]
        );
        assert_eq!(p.colors()[6].rgb, [0, 128, 128]);
        assert_eq!(Palette::benchmark().colors(), &ALL);
    }

    #[test]
    fn bad_files_are_named_errors() {
        let err = |text: &str| Palette::parse(text, "p.toml").unwrap_err().to_string();
        let e = err(&EIGHT.replace("[0, 128, 128]", "[0, 128, 300]"));
        assert!(
            e.contains("p.toml") && e.contains("\"teal\"") && e.contains("0-255"),
            "{e}"
        );
        assert!(err(&EIGHT.replace("[0, 128, 128]", "[0, 128]")).contains("\"teal\""));
        assert!(err(&EIGHT.replace("[0, 128, 128]", "\"#008080\"")).contains("\"teal\""));
        assert!(err(&EIGHT.replace("[0, 128, 128]", "[0.5, 128, 128]")).contains("\"teal\""));
        let e = err("");
        assert!(e.contains("0 colours") && e.contains("at least 7"), "{e}");
        let e = err(&format!("{EIGHT}teal = [1, 2, 3]\n"));
        assert!(e.contains("p.toml") && e.contains("duplicate"), "{e}");
        let e = err(&format!("{EIGHT}Sky = [1, 2, 3]\n"));
        assert!(e.contains("\"Sky\"") && e.contains("lowercase"), "{e}");
        let e = err(&format!("{EIGHT}aqua = [0, 128, 128]\n"));
        assert!(e.contains("same colour"), "{e}");
        assert!(err("teal = [0, 128, 128").contains("p.toml"));
        let e = Palette::read(std::path::Path::new("/no/such.toml")).unwrap_err();
        assert!(e.to_string().contains("/no/such.toml"));
    }
}
