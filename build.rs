//! Writes the shell completions and manual pages from the command line's
//! definition (src/cli.rs) next to the binary, in `completions/` and `man/`
//! of the profile's target directory, where the Debian package takes them.

use std::path::{Path, PathBuf};

#[path = "src/cli.rs"]
mod cli;

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=src/cli.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let profile_dir = profile_dir();

    let completions = profile_dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    // The names each shell looks for in its completion directory.
    for (shell, name) in [
        (cli::Shell::Bash, "newsletter"),
        (cli::Shell::Zsh, "_newsletter"),
        (cli::Shell::Fish, "newsletter.fish"),
    ] {
        let mut file = std::fs::File::create(completions.join(name))?;
        shell.write_completions(&mut file);
    }

    let man = profile_dir.join("man");
    std::fs::create_dir_all(&man)?;
    let command = <cli::Cli as clap::CommandFactory>::command();
    clap_mangen::generate_to(command, &man)
}

/// `target/<profile>` (or `target/<triple>/<profile>`): OUT_DIR is
/// `<that>/build/<package>-<hash>/out`.
fn profile_dir() -> PathBuf {
    let out_dir = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    Path::new(&out_dir)
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is three levels below the profile directory")
        .to_path_buf()
}
