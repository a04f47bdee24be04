//! Rebuild when the `bpf-linker` binary changes: the crate depends on it but cargo cannot know.
use which::which;

fn main() {
    match which("bpf-linker") {
        Ok(linker) => println!("cargo:rerun-if-changed={}", linker.display()),
        Err(_) => println!(
            "cargo:warning=bpf-linker not found on PATH; run `cargo xtask setup` to install it"
        ),
    }
}
