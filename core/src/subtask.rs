//! The sub-task grammar: the sentences a policy writes between the instruction and the
//! action, formatted and parsed in this one place. A step is "pick up the {pick} and place
//! it on the {place}." (the oracle writes it, the model learns it, the simulator reads the
//! picked object back to count re-picks); a finished task says its completed sentence,
//! "done {what}." (each task has its own, e.g. "done stacking all the blocks.").
//!
//! Parsing is deliberately lenient: a model may write text the grammar does not produce,
//! and what it reads of such text (the place's kind, "done") must not depend on the rest.

const PICK: &str = "pick up the ";
const PLACE: &str = " and place it on the ";
const DONE: &str = "done";

/// The sub-task that moves `pick` onto `place`.
pub fn pick_place(pick: &str, place: &str) -> String {
    format!("{PICK}{pick}{PLACE}{place}.")
}

/// A task's completed sentence, "done {what}.".
pub fn done(what: &str) -> String {
    format!("{DONE} {what}.")
}

/// Whether a sub-task says the task is complete.
pub fn is_done(subtask: &str) -> bool {
    subtask.starts_with(DONE)
}

/// What a sub-task's place is, read from its last word: what tells the model where to
/// point for the place keypose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceKind {
    /// "… on the red bowl", "… on the smaller green block": an object marks it.
    Object,
    /// "… on the blue zone": a zone, pointed at with its own head.
    Zone,
    /// "… on the top left area", "… on the center": a spot no object marks.
    Open,
}

/// The kind of the place of `subtask`.
pub fn place_kind(subtask: &str) -> PlaceKind {
    let place = subtask.trim_end_matches('.');
    if place.ends_with("zone") {
        PlaceKind::Zone
    } else if place.ends_with("area") || place.ends_with("center") {
        PlaceKind::Open
    } else {
        PlaceKind::Object
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_format_and_parse_back() {
        let s = pick_place("smaller pink block", "smaller green block");
        assert_eq!(
            s,
            "pick up the smaller pink block and place it on the smaller green block."
        );
        assert_eq!(
            done("stacking all the blocks"),
            "done stacking all the blocks."
        );
        assert!(is_done(&done("placing blocks")) && !is_done(&s));
        assert_eq!(
            place_kind(&pick_place("red block", "blue zone")),
            PlaceKind::Zone
        );
        assert_eq!(
            place_kind(&pick_place("red block", "top left area")),
            PlaceKind::Open
        );
        assert_eq!(
            place_kind(&pick_place("red block", "center")),
            PlaceKind::Open
        );
        assert_eq!(place_kind(&s), PlaceKind::Object);
        // Text outside the grammar is read the same way, never refused.
        assert_eq!(
            place_kind("red up the red block and place it on the red zone."),
            PlaceKind::Zone
        );
    }
}
