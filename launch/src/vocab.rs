//! `loho vocab import`: the one-time conversion of an open vocabulary (word pieces and
//! their pretrained table) from PyPI's wordllama, for `loho train --vocab DIR`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum VocabCmd {
    /// Convert wordllama's tokenizer and embedding table (unzipped from its wheel:
    /// `pip download wordllama==0.4.0.post1 --no-deps && unzip wordllama-*.whl`) into a
    /// vocabulary folder (docs/model.md, "Open vocabulary").
    Import {
        /// `wordllama/tokenizers/l2_supercat_tokenizer_config.json`.
        #[arg(long)]
        tokenizer: PathBuf,
        /// `wordllama/weights/l2_supercat_256.safetensors`.
        #[arg(long)]
        table: PathBuf,
        /// The folder to write `tokenizer.json` and `pieces.safetensors` to.
        #[arg(long, default_value = "models/vocab/wordllama")]
        out: PathBuf,
    },
}

/// `loho vocab`.
pub fn command(c: VocabCmd) -> Result<()> {
    match c {
        VocabCmd::Import {
            tokenizer,
            table,
            out,
        } => {
            let (size, width) = loho_models::wordllama::import(&tokenizer, &table, &out)
                .with_context(|| format!("converting into {}", out.display()))?;
            println!(
                "{}: {size} ids ({} own, then word pieces), table {size} × {width} at F16",
                out.display(),
                loho_models::vocab::OWN
            );
            Ok(())
        }
    }
}
