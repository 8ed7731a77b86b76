//! The task families (L–Z, AA–AE) are new tasks, not F–K in other clothes: over many seeds of
//! every split, no family's instruction and no family's sequence of oracle sub-tasks,
//! read with its colours and areas blanked out, is one of F–K's, and no family ends on
//! an F–K "done" sentence. And the oracle solves every family.

use std::collections::BTreeSet;

use loho_sim::colors::ALL;
use loho_sim::goal::PlaceName;
use loho_sim::scene::QUADRANTS;
use loho_sim::tasks::generate;
use loho_sim::{run_episode, Oracle, Split, TaskId, ALL_TASKS, FAMILIES};

/// F–K, the tasks LoHoVLA never trained on.
fn held_out() -> &'static [TaskId] {
    &ALL_TASKS[5..]
}
const SPLITS: [Split; 3] = [Split::Train, Split::Val, Split::Test];

/// A text with its areas blanked and its colours numbered by first appearance ("the red
/// block on the red zone" is not "the red block on the blue zone"): its template.
fn blank(text: &str) -> String {
    let mut t = text.to_string();
    for a in QUADRANTS {
        t = t.replace(a.name, "{area}");
    }
    t = t.replace("center", "{area}");
    let mut seen: Vec<&str> = Vec::new();
    let words: Vec<String> = t
        .split(' ')
        .map(|w| {
            let bare = w.trim_end_matches(['.', ',']);
            match ALL.iter().find(|c| c.name == bare) {
                Some(c) => {
                    let i = seen.iter().position(|s| *s == c.name).unwrap_or_else(|| {
                        seen.push(c.name);
                        seen.len() - 1
                    });
                    w.replacen(bare, &format!("{{color{i}}}"), 1)
                }
                None => w.to_string(),
            }
        })
        .collect();
    words.join(" ")
}

/// The blanked oracle sub-tasks of an episode ("done" included, where the oracle says
/// it; colours numbered across the whole episode), and whether the oracle succeeded.
fn sequence(task: TaskId, split: Split, k: u64) -> (Vec<String>, bool) {
    let r = run_episode(
        task,
        split,
        split.seed(k),
        &Default::default(),
        &mut Oracle,
        None,
    )
    .unwrap();
    let all = blank(&r.subtasks.join("\n"));
    (all.split('\n').map(String::from).collect(), r.success)
}

#[test]
fn no_family_is_an_f_to_k_task() {
    let mut instructions = BTreeSet::new();
    let mut done = BTreeSet::new();
    for &task in held_out() {
        instructions.insert(blank(&task.template().replace(['{', '}'], "")));
        for split in SPLITS {
            for k in 0..100 {
                let e = generate(task, split, split.seed(k)).unwrap();
                instructions.insert(blank(&e.instruction));
                done.insert(e.completed.clone());
            }
        }
    }
    for task in FAMILIES {
        for split in SPLITS {
            for k in 0..100 {
                let e = generate(task, split, split.seed(k)).unwrap();
                let b = blank(&e.instruction);
                assert!(
                    !instructions.contains(&b),
                    "{task:?}: {:?} is F-K's",
                    e.instruction
                );
                assert!(!done.contains(&e.completed), "{task:?}: {:?}", e.completed);
            }
        }
    }
    let mut sequences = BTreeSet::new();
    for &task in held_out() {
        for split in SPLITS {
            for k in 0..15 {
                sequences.insert(sequence(task, split, k).0);
            }
        }
    }
    for task in FAMILIES {
        for split in SPLITS {
            for k in 0..15 {
                let (s, _) = sequence(task, split, k);
                assert!(
                    !sequences.contains(&s),
                    "{task:?} {split:?} {k}: {s:?} is F-K's"
                );
            }
        }
    }
}

/// The check above can fail: a task is always in its own set.
#[test]
fn the_blanking_finds_a_task_in_its_own_set() {
    let a = generate(TaskId::J, Split::Val, 1).unwrap();
    let b = generate(TaskId::J, Split::Test, 10_003).unwrap();
    assert_eq!(blank(&a.instruction), blank(&b.instruction));
    assert_eq!(
        blank(&a.instruction),
        "move all the blocks on the {area} to the {area}."
    );
    let (k, _) = sequence(TaskId::K, Split::Val, 3);
    assert_eq!(
        k[0],
        "pick up the {color0} block and place it on the {color0} zone."
    );
    assert_eq!(sequence(TaskId::K, Split::Test, 3).0[0], k[0]);
}

#[test]
fn the_oracle_solves_every_family() {
    for task in FAMILIES {
        for split in SPLITS {
            for k in 0..50 {
                let (s, success) = sequence(task, split, k);
                assert!(success, "the oracle fails {task:?} {split:?} {k}: {s:?}");
            }
        }
    }
}

/// AA–AC share a scene among rules; the combinations that are F (mismatched bowls), I
/// (pairs stacked in zones) and K (a group stacked on its own zone) are never drawn,
/// though every other combination is.
#[test]
fn the_mixed_families_never_draw_f_i_or_k() {
    let mut drawn = BTreeSet::new();
    for split in SPLITS {
        for k in 0..200 {
            let slot = |e: &loho_sim::tasks::Episode, name: &str| {
                e.slots.iter().find(|(n, _)| *n == name).unwrap().1.clone()
            };
            let aa = generate(TaskId::AA, split, split.seed(k)).unwrap();
            let (dest, rel) = (slot(&aa, "destination"), slot(&aa, "relation"));
            assert!(
                dest == "zones" || rel == "matching colors",
                "{}",
                aa.instruction
            );
            drawn.insert(format!("AA {dest} {rel}"));
            let ab = generate(TaskId::AB, split, split.seed(k)).unwrap();
            let verb = slot(&ab, "verb");
            assert!(
                verb == "put" || !ab.instruction.contains("zone"),
                "{}",
                ab.instruction
            );
            drawn.insert(format!("AB {verb}"));
            let ac = generate(TaskId::AC, split, split.seed(k)).unwrap();
            let (verb, blocks, dest) = (
                slot(&ac, "verb"),
                slot(&ac, "blocks"),
                slot(&ac, "destination"),
            );
            if verb == "stack" {
                let color = blocks
                    .trim_start_matches("the ")
                    .trim_end_matches(" blocks");
                assert_ne!(dest, format!("on the {color} zone"), "{}", ac.instruction);
            }
            drawn.insert(format!("AC {verb}"));
        }
    }
    assert_eq!(drawn.len(), 8, "{drawn:?}");
}

/// AD stacks I's pairs in zones, but each in the zone of the other pair's colour: a pair
/// in its own colour's zone would be I's rule.
#[test]
fn the_pairs_of_ad_never_go_to_their_own_zones() {
    for split in SPLITS {
        for k in 0..100 {
            let ad = generate(TaskId::AD, split, split.seed(k)).unwrap();
            let first = &ad.steps[0];
            assert_eq!(first.pick_names.len(), 2, "{}", ad.instruction);
            for (pick, place) in first.pick_names.iter().zip(&first.place_names) {
                let color = pick
                    .trim_start_matches("bigger ")
                    .trim_end_matches(" block");
                let PlaceName::Text(zone) = place else {
                    panic!("{place:?}")
                };
                assert!(zone.ends_with(" zone"), "{zone}");
                assert_ne!(zone, &format!("{color} zone"), "{}", ad.instruction);
            }
        }
    }
}
