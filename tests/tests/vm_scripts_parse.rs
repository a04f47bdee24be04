//! The VM test bed's shell scripts parse (`sh -n`) on the host, so a syntax error fails here in
//! a second instead of failing every scenario of every kernel after a boot.
use std::path::PathBuf;

fn scripts() -> Vec<PathBuf> {
    let vm = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vm");
    let mut found = vec![vm.join("lib.sh"), vm.join("init.sh")];
    for dir in ["scenarios", "bench", "lib"] {
        let Ok(entries) = std::fs::read_dir(vm.join(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "sh") {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn every_vm_script_parses() {
    let scripts = scripts();
    assert!(scripts.len() > 10, "{scripts:?}");
    let mut broken = Vec::new();
    for script in &scripts {
        let out = std::process::Command::new("sh")
            .arg("-n")
            .arg(script)
            .output()
            .expect("running sh -n");
        if !out.status.success() {
            broken.push(format!(
                "{}: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
