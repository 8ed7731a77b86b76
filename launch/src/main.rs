//! The `loho` binary: everything is in the library (`loho::main_logged`).

/// mimalloc, not glibc's malloc: a decision makes and drops hundreds of small tensors,
/// and glibc's free lists took ~15 % of one (`perf`). `loho bench policy`, p50 on one
/// core, open-vocabulary checkpoint: 11.7 → 9.6 ms; loho-tiny 9.4 → 8.7 ms.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    loho::main_logged(std::env::args())
}
