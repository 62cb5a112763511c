use super::*;
use std::collections::HashMap;
use std::ffi::OsString;

fn env(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn touch_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn missing_install_lists_every_path_tried() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("repo/target/release/rlm-lsp");
    let cache = tmp.path().join("cache");
    let empty_path = tmp.path().join("empty-bin");
    let err = LocalServerConfig::resolve(
        env(&[("RLM_CACHE_DIR", &cache), ("PATH", &empty_path)]),
        &exe,
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("llama-server not found; tried:"), "{err}");
    assert!(err.contains("RLM_LLAMA_SERVER (not set)"), "{err}");
    assert!(err.contains("`llama-server` on PATH (not found)"), "{err}");
    assert!(err.contains("(no .rlm directory found)"), "{err}");
    assert!(
        err.contains(&format!(
            "{}/llama.cpp-11434.0.0/bin/llama-server",
            cache.display()
        )),
        "{err}"
    );
    assert!(err.contains("Run scripts/setup.sh"), "{err}");
    assert!(err.contains("RLM_BASE_URL"), "{err}");
}

#[test]
fn lookup_order_env_then_path_then_dot_rlm_then_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let exe = repo.join("target/release/rlm-lsp");
    let cache = tmp.path().join("cache");
    let bin_dir = tmp.path().join("bin");
    let on_path = bin_dir.join("llama-server");
    let in_repo = repo.join(".rlm/bin/llama-server");
    let in_cache = cache.join("llama.cpp-11434.0.0/bin/llama-server");
    let model_repo = repo.join(".rlm/models").join(MODEL_FILE);
    let model_cache = cache.join("models").join(MODEL_FILE);
    for p in [&on_path, &in_repo, &in_cache, &model_repo, &model_cache] {
        touch_executable(p);
    }
    let explicit = tmp.path().join("explicit-server");
    touch_executable(&explicit);

    let resolve = |vars: &[(&str, &Path)]| LocalServerConfig::resolve(env(vars), &exe).unwrap();
    let c = resolve(&[
        ("RLM_CACHE_DIR", &cache),
        ("PATH", &bin_dir),
        ("RLM_LLAMA_SERVER", &explicit),
    ]);
    assert_eq!(c.llama_server, explicit);
    let c = resolve(&[("RLM_CACHE_DIR", &cache), ("PATH", &bin_dir)]);
    assert_eq!(c.llama_server, on_path);
    assert_eq!(c.model, model_repo);
    assert_eq!(c.state_dir, cache.join("local-server"));
    assert_eq!(c.keeper_exe, exe);
    std::fs::remove_file(&in_repo).unwrap();
    std::fs::remove_file(&model_repo).unwrap();
    let c = resolve(&[("RLM_CACHE_DIR", &cache)]);
    assert_eq!(c.llama_server, in_cache);
    assert_eq!(c.model, model_cache);
    assert_eq!(c.model_name(), "qwen2.5-coder-1.5b-instruct-q4_k_m");
    assert_eq!(c.ctx_size, DEFAULT_CTX);
    assert_eq!(c.parallel, 2);

    // An explicit path that does not exist is an error, not a silent fallback.
    let missing = tmp.path().join("nope.gguf");
    let err = LocalServerConfig::resolve(
        env(&[("RLM_CACHE_DIR", &cache), ("RLM_LOCAL_MODEL", &missing)]),
        &exe,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("RLM_LOCAL_MODEL=") && err.contains("(no such file)"),
        "{err}"
    );
}

#[test]
fn cache_dir_falls_back_to_xdg_then_home() {
    let x = Path::new("/x");
    let h = Path::new("/h");
    assert_eq!(
        cache_dir(&env(&[("XDG_CACHE_HOME", x), ("HOME", h)])).unwrap(),
        x.join("rlm-lsp")
    );
    assert_eq!(
        cache_dir(&env(&[("HOME", h)])).unwrap(),
        h.join(".cache/rlm-lsp")
    );
    assert!(matches!(
        cache_dir(&env(&[])),
        Err(LocalModelError::NoCacheDir)
    ));
}

#[test]
fn tuning_variables_are_validated() {
    let tmp = tempfile::tempdir().unwrap();
    let server = tmp.path().join("llama-server");
    let model = tmp.path().join(MODEL_FILE);
    touch_executable(&server);
    touch_executable(&model);
    let base = [
        ("RLM_LLAMA_SERVER", server.as_path()),
        ("RLM_LOCAL_MODEL", model.as_path()),
        ("RLM_CACHE_DIR", tmp.path()),
    ];
    let with = |extra: (&'static str, &'static str)| {
        let mut vars: Vec<(&str, &Path)> = base.to_vec();
        vars.push((extra.0, Path::new(extra.1)));
        LocalServerConfig::resolve(env(&vars), Path::new("/bin/rlm-lsp"))
    };
    let c = with(("RLM_LOCAL_THREADS", "3")).unwrap();
    assert_eq!(c.threads, 3);
    let c = with(("RLM_LOCAL_CTX", "8192")).unwrap();
    assert_eq!(c.ctx_size, 8192);
    let err = with(("RLM_LOCAL_THREADS", "many")).unwrap_err().to_string();
    assert!(
        err.starts_with("RLM_LOCAL_THREADS=\"many\" is invalid"),
        "{err}"
    );
    let err = with(("RLM_LOCAL_CTX", "10")).unwrap_err().to_string();
    assert!(err.contains("between 1024 and"), "{err}");
}

#[test]
fn instance_dir_is_per_model_and_stable_across_links() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join(MODEL_FILE);
    std::fs::write(&model, b"gguf").unwrap();
    let link = tmp.path().join("link.gguf");
    std::os::unix::fs::symlink(&model, &link).unwrap();
    let config = |model: PathBuf| LocalServerConfig {
        llama_server: PathBuf::from("/s"),
        model,
        keeper_exe: PathBuf::from("/e"),
        state_dir: PathBuf::from("/state"),
        ctx_size: DEFAULT_CTX,
        parallel: 2,
        threads: 2,
        startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        linger: Duration::ZERO,
    };
    let a = config(model.clone()).instance_dir();
    assert!(a.starts_with("/state"));
    assert!(
        a.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("qwen2.5-coder-1.5b-instruct-q4_k_m-")
    );
    // Same file through a symlink under another name: same server, same model name.
    assert_eq!(config(link.clone()).instance_dir(), a);
    assert_eq!(
        config(link).model_name(),
        "qwen2.5-coder-1.5b-instruct-q4_k_m"
    );
    let other = tmp.path().join("other.gguf");
    std::fs::write(&other, b"gguf").unwrap();
    assert_ne!(config(other).instance_dir(), a);
}
