//! The simulated RGB-D cameras against the ideal heightmap they are fused to stand in for.

use loho_sim::rgbd::{Lighting, Rig};
use loho_sim::{Env, Split, ALL_TASKS};

#[test]
fn the_fused_cameras_see_the_ideal_heights() {
    let rig = Rig::benchmark();
    for &task in ALL_TASKS.iter() {
        let env = Env::new(task, Split::Val, Split::Val.seed(0)).unwrap();
        let ideal = env.observe();
        let fused = env.with_cameras(rig.clone()).observe();
        let n = ideal.height.len();
        let unknown = fused.height.iter().filter(|h| !h.is_finite()).count();
        let close = |k: usize| (fused.height[k] - ideal.height[k]).abs() < 0.01;
        let objects: Vec<usize> = (0..n).filter(|&k| ideal.height[k] > 0.01).collect();
        let on_objects = objects.iter().filter(|&&k| close(k)).count();
        let everywhere = (0..n).filter(|&k| close(k)).count();
        let letter = task.letter();
        // Three views leave almost no cell unseen; what every object's top is, they
        // agree on to 1 cm; the rest of the misses are the noisy rims around objects.
        assert!(unknown < n / 500, "{letter}: {unknown} unseen cells");
        assert!(
            on_objects as f64 > 0.99 * objects.len() as f64,
            "{letter}: {on_objects} of {} object cells within 1 cm",
            objects.len()
        );
        assert!(
            everywhere as f64 > 0.9 * n as f64,
            "{letter}: {everywhere} of {n}"
        );
    }
}

#[test]
fn pictures_are_lit_per_episode_and_noisy_per_frame() {
    let rig = Rig::benchmark();
    let env = |seed| {
        Env::new(ALL_TASKS[1], Split::Val, seed)
            .unwrap()
            .with_cameras(rig.clone())
    };
    let (a, b) = (env(1), env(3));
    let shots = a.shoot().unwrap();
    assert_eq!(shots.len(), 3);
    assert_eq!(shots[0].rgb.len(), 640 * 480 * 3);
    // The same episode at the same instant: the same pictures, bit for bit.
    assert_eq!(env(1).shoot().unwrap()[0].rgb, shots[0].rgb);
    // Another episode's light is another brightness of the same table.
    let mean = |rgb: &[u8]| rgb.iter().map(|&c| c as f64).sum::<f64>() / rgb.len() as f64;
    let (la, lb) = (Lighting::draw(1, 3), Lighting::draw(3, 3));
    assert_ne!(la, lb);
    let (ma, mb) = (mean(&shots[0].rgb), mean(&b.shoot().unwrap()[0].rgb));
    assert!((ma - mb).abs() > 0.5, "{ma} vs {mb}");
    // Depth: the table at the image centre is 1.06 m from the front camera, about 3 mm
    // of noise there, and some pixels have no depth at all.
    let d = &shots[0].depth_mm;
    let missing = d.iter().filter(|&&v| v == 0).count();
    assert!(missing > 100 && missing < d.len() / 4, "{missing}");
}
