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
    #[error(
        "--palette-draw {n}: the palette has {visible} colours the policy can see on the \
         table; draw from {MIN_COLORS} up to that many"
    )]
    Pick { n: usize, visible: usize },
}

/// The largest difference of two colours in one channel: what the stem's thresholds
/// compare.
fn gap(a: [u8; 3], b: [u8; 3]) -> i32 {
    (0..3)
        .map(|k| (a[k] as i32 - b[k] as i32).abs())
        .max()
        .unwrap_or(0)
}

/// Colours drawn together for one episode differ by more than this in some channel: the
/// policy's stem joins touching regions that differ by at most 40 in every channel.
pub const PICK_APART: i32 = 64;
/// … and from the table's grey by at least this in some channel: the stem sees a flat
/// zone by its colour alone (24 levels off the grey 51), with room for shading and noise.
pub const PICK_VISIBLE: i32 = 48;

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

    /// (name, RGB) of each colour: the form a training run's config keeps its palette in.
    pub fn named_rgb(&self) -> Vec<(String, [u8; 3])> {
        self.colors
            .iter()
            .map(|c| (c.name.to_string(), c.rgb))
            .collect()
    }

    /// `n` of this palette's colours for one episode, in name order: drawn in `rng`'s
    /// order, each more than [`PICK_APART`] from those drawn before where the palette
    /// allows, and only colours the stem sees on the table. An error when fewer than `n`
    /// are visible or `n` is below [`MIN_COLORS`].
    pub fn pick(&self, n: usize, rng: &mut impl rand::Rng) -> Result<Palette, PaletteError> {
        use rand::seq::SliceRandom;
        let visible = |c: &&Color| gap(c.rgb, TABLE) >= PICK_VISIBLE;
        let mut left: Vec<Color> = self.colors.iter().filter(visible).copied().collect();
        if n < MIN_COLORS || left.len() < n {
            return Err(PaletteError::Pick {
                n,
                visible: left.len(),
            });
        }
        left.shuffle(rng);
        let mut picked: Vec<Color> = Vec::with_capacity(n);
        let mut close = Vec::new();
        for c in left {
            if picked.len() < n && picked.iter().all(|p| gap(p.rgb, c.rgb) > PICK_APART) {
                picked.push(c);
            } else {
                close.push(c);
            }
        }
        // Short of `n` far-apart colours: the rest in the order drawn.
        picked.extend(close.into_iter().take(n - picked.len()));
        picked.sort_by_key(|c| c.name);
        Ok(Palette { colors: picked })
    }

    /// Which name a model trained on the colours `known` (name, RGB) reads for each of
    /// this palette's colours it has no name for: (this palette's name, the model's). Each
    /// stands in for one, never a name this palette has itself; a name both know means
    /// itself and is not listed. Chosen nearest in RGB first (squared distance, ties by
    /// name), from three tiers in turn: the benchmark's eleven, which every checkpoint
    /// trained on most (with [`recolouring`](Self::recolouring) the model then meets the
    /// colours it handles best: val × 20 on A–K in `configs/palettes/unseen.toml`, 80.0 %
    /// against 66.8 with any trained colour); any known colour; and, short of those, the
    /// nearest free one. The first two keep stand-ins more than [`PICK_APART`] apart from
    /// each other and from the known colours this palette shows, as training drew its
    /// scenes (two a model never saw side by side, such as goldenrod and dark goldenrod,
    /// it tells apart badly).
    pub fn stand_ins(&self, known: &[(String, [u8; 3])]) -> Vec<(String, String)> {
        let mine = |n: &str| self.colors.iter().any(|c| c.name == n);
        let rgb_of = |n: &str| known.iter().find(|(k, _)| k == n).map(|(_, rgb)| *rgb);
        let dist = |a: [u8; 3], b: [u8; 3]| -> i32 {
            (0..3).map(|k| (a[k] as i32 - b[k] as i32).pow(2)).sum()
        };
        let mut options: Vec<(i32, &str, &str, [u8; 3])> = Vec::new();
        for c in self.colors.iter().filter(|c| rgb_of(c.name).is_none()) {
            for (k, rgb) in known.iter().filter(|(k, _)| !mine(k)) {
                options.push((dist(c.rgb, *rgb), c.name, k, *rgb));
            }
        }
        options.sort();
        let mut seen: Vec<[u8; 3]> = self.colors.iter().filter_map(|c| rgb_of(c.name)).collect();
        let mut pairs: Vec<(String, String)> = Vec::new();
        let benchmark = |n: &str| ALL.iter().any(|c| c.name == n);
        for (eleven, apart) in [(true, true), (false, true), (false, false)] {
            for (_, name, stand_in, rgb) in &options {
                let free = pairs.iter().all(|(n, s)| n != name && s != stand_in);
                let far = !apart || seen.iter().all(|c| gap(*c, *rgb) > PICK_APART);
                if free && far && (!eleven || benchmark(stand_in)) {
                    pairs.push((name.to_string(), stand_in.to_string()));
                    seen.push(*rgb);
                }
            }
        }
        pairs
    }

    /// What a model trained on the colours `known` should see in place of each of this
    /// palette's colours: (this palette's RGB, the RGB training gave the name it reads
    /// for it — its own or its [`stand-in`](Self::stand_ins)), and the table as itself.
    /// A colour with neither stays as it is.
    pub fn recolouring(&self, known: &[(String, [u8; 3])]) -> Vec<([u8; 3], [u8; 3])> {
        let stand_ins = self.stand_ins(known);
        let rgb_of = |n: &str| known.iter().find(|(k, _)| k == n).map(|(_, rgb)| *rgb);
        let mut out = vec![(TABLE, TABLE)];
        for c in &self.colors {
            let read_as = stand_ins
                .iter()
                .find(|(n, _)| n == c.name)
                .map_or(c.name, |(_, s)| s.as_str());
            out.push((c.rgb, rgb_of(read_as).unwrap_or(c.rgb)));
        }
        out
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

    /// The shipped training pool: none of the unseen-colour row's words, and an
    /// episode's draw of it is what the stem can tell apart.
    #[test]
    fn an_episode_draws_colours_the_policy_can_tell_apart() {
        use rand::SeedableRng;
        let pool = include_str!("../../configs/palettes/many.toml");
        let pool = Palette::parse(pool, "many.toml").unwrap();
        assert_eq!(pool.colors().len(), 81);
        let unseen =
            Palette::parse(include_str!("../../configs/palettes/unseen.toml"), "u").unwrap();
        for c in pool.colors() {
            assert!(
                unseen
                    .colors()
                    .iter()
                    .all(|u| !c.name.split(' ').any(|w| w == u.name)),
                "{}",
                c.name
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let p = pool.pick(11, &mut rng).unwrap();
            let again = pool.pick(11, &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(p, again.unwrap());
            let c = p.colors();
            assert_eq!(c.len(), 11);
            assert!(c.windows(2).all(|w| w[0].name < w[1].name));
            for (i, a) in c.iter().enumerate() {
                // Measured here, not with `gap`: the test checks it too.
                let off_table = (0..3).map(|k| (a.rgb[k] as i32 - TABLE[k] as i32).abs());
                assert!(off_table.max().unwrap() >= PICK_VISIBLE, "{}", a.name);
                for b in &c[..i] {
                    let d = (0..3).map(|k| (a.rgb[k] as i32 - b.rgb[k] as i32).abs());
                    assert!(d.max().unwrap() > PICK_APART, "{} {}", a.name, b.name);
                }
                seen.insert(a.name);
            }
        }
        // Two hundred episodes see nearly the whole pool.
        assert!(seen.len() >= 75, "{}", seen.len());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for n in [6, 82] {
            let e = pool.pick(n, &mut rng).unwrap_err().to_string();
            assert!(
                e.contains(&format!("--palette-draw {n}")) && e.contains("81"),
                "{e}"
            );
        }
        // A colour the table hides is never drawn.
        let dark = format!("{EIGHT}\"dark slate gray\" = [47, 79, 79]\n");
        let p = Palette::parse(&dark, "d").unwrap();
        let e = p.pick(9, &mut rng).unwrap_err().to_string();
        assert!(e.contains("8 colours the policy can see"), "{e}");
    }

    /// A trained palette, as `train.json` lists it.
    fn named(list: &[(&str, [u8; 3])]) -> Vec<(String, [u8; 3])> {
        list.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    /// The stand-in `pairs` give `name`, if any.
    fn stand_in<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
        pairs
            .iter()
            .find(|(d, _)| d == name)
            .map(|(_, s)| s.as_str())
    }

    #[test]
    fn unknown_names_read_as_the_nearest_free_known_colour() {
        let p = Palette::parse(
            "teal = [0, 128, 128]\nnavy = [0, 0, 128]\nblue = [0, 0, 255]\n\
             maroon = [128, 0, 0]\nred = [255, 0, 0]\ngreen = [0, 255, 0]\n\
             white = [255, 255, 255]",
            "t",
        )
        .unwrap();
        let known = named(&[
            ("dark cyan", [0, 139, 139]),
            ("dark blue", [0, 0, 139]),
            ("blue", [78, 121, 167]),
            ("dark red", [139, 0, 0]),
            ("red", [255, 87, 89]),
            ("gray", [186, 176, 172]),
        ]);
        let pairs = p.stand_ins(&known);
        let of = |n: &str| stand_in(&pairs, n);
        assert_eq!(of("teal"), Some("dark cyan"));
        assert_eq!(of("navy"), Some("dark blue"));
        assert_eq!(of("maroon"), Some("dark red"));
        // Known names mean themselves; what is left stands in for the rest, one each.
        assert_eq!(of("blue"), None);
        assert_eq!(of("red"), None);
        assert_eq!(of("white"), Some("gray"));
        assert_eq!(of("green"), None, "no known colour is left for it");
    }

    #[test]
    fn stand_ins_stay_apart_as_training_scenes_did_and_recolour_to_their_rgb() {
        let p = Palette::parse(EIGHT, "t").unwrap();
        let known = named(&[
            ("goldenrod", [218, 165, 32]),
            ("dark goldenrod", [184, 134, 11]),
            ("dark orange", [255, 140, 0]),
        ]);
        let pairs = p.stand_ins(&known);
        let of = |n: &str| stand_in(&pairs, n);
        // Nearest first, gold would read as goldenrod, 34 from olive's dark goldenrod.
        assert_eq!(of("olive"), Some("dark goldenrod"));
        assert_eq!(of("gold"), Some("dark orange"));
        let shown = p.recolouring(&known);
        assert!(shown.contains(&([128, 128, 0], [184, 134, 11])));
        assert!(shown.contains(&(TABLE, TABLE)));
        // With nothing apart left, the nearest free one still stands in.
        let few: Vec<_> = known[..2].to_vec();
        let pairs = p.stand_ins(&few);
        let of = |n: &str| stand_in(&pairs, n);
        assert_eq!(of("gold"), Some("goldenrod"), "{pairs:?}");
        // The benchmark's eleven first: teal reads as blue, not the nearer dark cyan.
        let known = named(&[("dark cyan", [0, 139, 139]), ("blue", [78, 121, 167])]);
        let pairs = p.stand_ins(&known);
        assert_eq!(pairs[0], ("teal".to_string(), "blue".to_string()));
    }
}
