//! `kontinuum-image`: writes Kontinuum's image as an OCI archive from static
//! binaries (no container daemon), and checks or unpacks such an archive.
//! scripts/build-image drives it; see docs/install.md.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kontinuum_image::{Error, archive, rootfs, verify};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(name = "kontinuum-image", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the image archive from the three static binaries.
    Build {
        /// Directory holding kontinuum-operator, kontinuum-worker and kontinuum.
        #[arg(long, value_name = "DIR")]
        bin_dir: PathBuf,
        /// PEM bundle of CA certificates to ship as /etc/ssl/certs/ca-certificates.crt.
        #[arg(
            long,
            value_name = "FILE",
            default_value = "/etc/ssl/certs/ca-certificates.crt"
        )]
        ca_bundle: PathBuf,
        #[arg(long, default_value = "kontinuum.dev/kontinuum")]
        repository: String,
        #[arg(long)]
        tag: String,
        /// Timestamp of every file and of the image (seconds since the epoch).
        #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
        created: i64,
        /// An OCI label, KEY=VALUE (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write an image of a worker built with the SDK: one static binary on
    /// the stock image's base (CA roots, non-root user 65532), run as the
    /// container's command.
    Worker {
        /// The static (musl) worker binary, e.g.
        /// target/x86_64-unknown-linux-musl/release/kontinuum-seed-worker.
        #[arg(long, value_name = "FILE")]
        binary: PathBuf,
        #[arg(
            long,
            value_name = "FILE",
            default_value = "/etc/ssl/certs/ca-certificates.crt"
        )]
        ca_bundle: PathBuf,
        /// e.g. registry.example.com/team/seed-worker
        #[arg(long)]
        repository: String,
        #[arg(long)]
        tag: String,
        #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
        created: i64,
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check an archive (index → manifest → config → layers) and print its summary.
    Verify { archive: PathBuf },
    /// Check an archive and unpack its root filesystem into DIR.
    Unpack {
        archive: PathBuf,
        dir: PathBuf,
        /// Also restore file owners (needs root).
        #[arg(long)]
        owners: bool,
    },
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn build(
    entries: Vec<rootfs::Entry>,
    spec: archive::Spec,
    out: &Path,
) -> Result<archive::Summary, Error> {
    let layer = rootfs::layer_tar(&entries, u64::try_from(spec.created).unwrap_or(0))?;
    // Written beside the target and renamed: a reader never sees half a file.
    let tmp = out.with_extension("tar.partial");
    let werr = |source| Error::Write {
        path: tmp.clone(),
        source,
    };
    let file = std::fs::File::create(&tmp).map_err(werr)?;
    let summary = archive::write(&spec, &layer, BufWriter::new(file))?;
    std::fs::rename(&tmp, out).map_err(|source| Error::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(summary)
}

fn print_summary(out: &Path, s: &archive::Summary) {
    println!(
        "{}",
        json!({
            "archive": out, "name": s.name, "manifest": s.manifest_digest,
            "config": s.config_digest, "layer": s.layer_digest,
            "compressedBytes": s.layer_compressed, "uncompressedBytes": s.layer_uncompressed,
        })
    );
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Build {
            bin_dir,
            ca_bundle,
            repository,
            tag,
            created,
            labels,
            out,
        } => {
            let spec = archive::Spec {
                repository,
                tag,
                created,
                user: format!("{0}:{0}", rootfs::USER_ID),
                env: vec!["PATH=/usr/local/bin".to_owned()],
                cmd: vec![format!("/{}/{}", rootfs::BIN_DIR, rootfs::BINARIES[0])],
                labels,
            };
            let entries = rootfs::entries(&rootfs::Inputs { bin_dir, ca_bundle })?;
            let s = build(entries, spec, &out)?;
            print_summary(&out, &s);
        }
        Command::Worker {
            binary,
            ca_bundle,
            repository,
            tag,
            created,
            labels,
            out,
        } => {
            let name = rootfs::binary_name(&binary)?;
            let spec = archive::Spec {
                repository,
                tag,
                created,
                user: format!("{0}:{0}", rootfs::USER_ID),
                env: vec!["PATH=/usr/local/bin".to_owned()],
                cmd: vec![format!("/{}/{name}", rootfs::BIN_DIR)],
                labels,
            };
            let entries = rootfs::with_binaries(&ca_bundle, &[binary])?;
            let s = build(entries, spec, &out)?;
            print_summary(&out, &s);
        }
        Command::Verify { archive } => {
            let image = verify::read(&read(&archive)?)?;
            let compressed: u64 = image.layers.iter().map(|l| l.compressed_size).sum();
            let uncompressed: u64 = image.layers.iter().map(|l| l.tar.len() as u64).sum();
            println!(
                "{}",
                json!({
                    "name": image.name, "manifest": image.manifest_digest,
                    "user": image.config.pointer("/config/User"),
                    "compressedBytes": compressed, "uncompressedBytes": uncompressed,
                })
            );
        }
        Command::Unpack {
            archive,
            dir,
            owners,
        } => verify::read(&read(&archive)?)?.unpack(&dir, owners)?,
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kontinuum-image: {e}");
            ExitCode::FAILURE
        }
    }
}
