//! Runs Confluent's own Python client (scripts/python/registry_confluent_check.py)
//! against a registry on a free port: the proof that Confluent's clients, not
//! only ours, work with this registry.

mod common;

use std::path::PathBuf;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_python_client_works_against_the_registry() {
    let root = workspace_root();
    let python = std::env::var_os("CHECKOUT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".local/venv/bin/python"));
    // Failing, not skipping: a missing interpreter must not pass silently.
    assert!(
        python.exists(),
        "no Python interpreter at {} (set CHECKOUT_PYTHON, or run scripts/test.sh, which creates \
         .local/venv with scripts/python/requirements.txt installed)",
        python.display()
    );
    let script = root.join("scripts/python/registry_confluent_check.py");

    let app = common::spawn().await;
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&app.url)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "{} failed ({}):\n{stdout}\n{stderr}",
        script.display(),
        output.status
    );
    assert!(
        stdout.contains("all Confluent client checks passed"),
        "{stdout}"
    );
    app.teardown().await;
}
