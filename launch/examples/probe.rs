use loho_models::Vla;
use loho_sim::{Decision, Env, Oracle, Policy, Split, ALL_TASKS};
fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let n: u64 = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(2);
    let mut errs = vec![];
    for t in ALL_TASKS {
        for k in 0..n {
            let env = Env::new(t, Split::Val, Split::Val.seed(k)).unwrap();
            let obs = env.observe();
            let mut vla = Vla::load(std::path::Path::new(&dir), 0).unwrap();
            vla.start(env.instruction()).unwrap();
            let o = vla.decide(&obs.rgb_bytes(), &obs.height, None).unwrap();
            let Decision::Act(a) = Oracle.decide(&env, &obs) else {
                continue;
            };
            let same = o.subtask == a.subtask;
            let o2 = vla
                .decide(&obs.rgb_bytes(), &obs.height, Some(&a.subtask))
                .unwrap();
            let kp = &o2.keyposes;
            let d = |x: f64, y: f64, z: f64, p: &loho_runtime::trajectory::EePose| {
                ((x - p.x).powi(2) + (y - p.y).powi(2)).sqrt() * 100.0 + 0.0 * (z - p.z)
            };
            let (dp, dq) = (
                d(kp[0].x, kp[0].y, kp[0].z, &a.pick),
                d(kp[1].x, kp[1].y, kp[1].z, &a.place),
            );
            errs.push((dp, dq));
            println!("{} same_text={} pick_err={:.1}cm place_err={:.1}cm dz=({:.3},{:.3})\n   oracle: {}\n   model:  {}", t.letter(), same, dp, dq, kp[0].z - a.pick.z, kp[1].z - a.place.z, a.subtask, o.subtask);
        }
    }
    let m = errs.len() as f64;
    println!(
        "mean pick err {:.2} cm, place err {:.2} cm",
        errs.iter().map(|e| e.0).sum::<f64>() / m,
        errs.iter().map(|e| e.1).sum::<f64>() / m
    );
}
