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
        let letter = task.code();
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
    let env = Env::new(ALL_TASKS[1], Split::Val, 1)
        .unwrap()
        .with_cameras(rig.clone());
    let shots = env.shoot().unwrap();
    assert_eq!(shots.len(), 3);
    assert_eq!(shots[0].rgb.len(), 640 * 480 * 3);
    // The same episode at the same instant: the same pictures, bit for bit.
    let again = Env::new(ALL_TASKS[1], Split::Val, 1)
        .unwrap()
        .with_cameras(rig.clone());
    assert_eq!(again.shoot().unwrap()[0].rgb, shots[0].rgb);
    // The same scene under another episode's light is another brightness; under the same
    // light with other sensor noise, other pixels of the same brightness.
    let mean = |rgb: &[u8]| rgb.iter().map(|&c| c as f64).sum::<f64>() / rgb.len() as f64;
    let (la, lb) = (Lighting::draw(1, 3), Lighting::draw(3, 3));
    assert_ne!(la, lb);
    let world = env.world();
    let (a, b) = (rig.shoot(world, &la, 7), rig.shoot(world, &lb, 7));
    let (ma, mb) = (mean(&a[0].rgb), mean(&b[0].rgb));
    assert!((ma - mb).abs() > 0.5, "{ma} vs {mb}");
    let c = rig.shoot(world, &la, 8);
    assert_ne!(c[0].rgb, a[0].rgb);
    assert!((mean(&c[0].rgb) - ma).abs() < 0.05);
    // Some pixels have no depth at all; most do.
    let d = &shots[0].depth_mm;
    let missing = d.iter().filter(|&&v| v == 0).count();
    assert!(missing > 100 && missing < d.len() / 4, "{missing}");
}
