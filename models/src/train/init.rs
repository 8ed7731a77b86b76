//! Weights drawn from a seeded stream in creation order: candle's own CPU generator
//! cannot be seeded, and a resumed run must draw what an uninterrupted one would.

use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::DTYPE;
use crate::normal;

/// A VarMap whose new variables are drawn from a seeded stream, in creation order.
struct SeededInit {
    map: VarMap,
    rng: Mutex<ChaCha8Rng>,
}

impl SimpleBackend for SeededInit {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self.map.data().lock().expect("var map lock");
        if let Some(v) = data.get(name) {
            return Ok(v.as_tensor().clone());
        }
        let n = s.elem_count();
        let mut rng = self.rng.lock().expect("rng lock");
        let values: Vec<f32> = match h {
            Init::Const(c) => vec![c as f32; n],
            Init::Randn { mean, stdev } => (0..n)
                .map(|_| (mean + stdev * normal(&mut *rng) as f64) as f32)
                .collect(),
            Init::Uniform { lo, up } => (0..n).map(|_| rng.gen_range(lo..up) as f32).collect(),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(&s) as f64).sqrt();
                match dist {
                    NormalOrUniform::Normal => (0..n)
                        .map(|_| (std * normal(&mut *rng) as f64) as f32)
                        .collect(),
                    NormalOrUniform::Uniform => {
                        let b = 3f64.sqrt() * std;
                        (0..n).map(|_| rng.gen_range(-b..b) as f32).collect()
                    }
                }
            }
        };
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let tensor = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("no tensor {name}")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .expect("var map lock")
            .contains_key(name)
    }
}

/// New variables drawn from `seed` in creation order, so a run (or a test) is reproducible.
pub(crate) fn seeded_var_builder(seed: u64, device: &Device) -> (VarMap, VarBuilder<'static>) {
    let seeded = SeededInit {
        map: VarMap::new(),
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
    };
    let map = seeded.map.clone();
    (
        map,
        VarBuilder::from_backend(Box::new(seeded), DTYPE, device.clone()),
    )
}
