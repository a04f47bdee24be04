//! Loading files: conf.d order, config_dir, missing files, reload.
use super::*;
use crate::config::*;
use std::{
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("marginal-config-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn names(config: &Config) -> Vec<String> {
    config
        .files()
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn conf_d_is_read_after_the_main_file_in_name_order() {
    let dir = TempDir::new();
    let main = dir.write(
        "multipath.conf",
        "defaults {\n marginal_path_err_sample_time 200\n}\n",
    );
    dir.write(
        "conf.d/20-b.conf",
        "defaults {\n marginal_path_err_sample_time 400\n}\n",
    );
    dir.write(
        "conf.d/10-a.conf",
        "defaults {\n marginal_path_err_sample_time 300\n marginal_path_err_rate_threshold 3\n}\n",
    );
    dir.write(
        "conf.d/30-c.conf.disabled",
        "defaults {\n marginal_path_err_sample_time 999\n}\n",
    );
    dir.write("conf.d/README", "not a config file {");
    let options = LoadOptions {
        file: main,
        required: true,
        config_dir: Some(dir.0.join("conf.d")),
        ..LoadOptions::default()
    };
    let config = Config::load_with(&options).unwrap();
    assert_eq!(
        names(&config),
        vec!["multipath.conf", "10-a.conf", "20-b.conf"]
    );
    let resolved = config.resolve(&netapp());
    let sample = resolved.get(Key::ErrSampleTime).unwrap();
    assert_eq!(sample.value, Setting::Value(400));
    assert!(
        sample
            .origin
            .to_string()
            .ends_with("conf.d/20-b.conf:2 (defaults)"),
        "{}",
        sample.origin
    );
    assert_eq!(
        resolved.get(Key::ErrRateThreshold).map(|s| s.value),
        Some(Setting::Value(3))
    );
}

#[test]
fn config_dir_keyword_is_honoured_in_the_main_file_only() {
    let dir = TempDir::new();
    let extra = dir.0.join("extra");
    dir.write(
        "extra/a.conf",
        "defaults {\n config_dir /nonexistent\n marginal_path_err_sample_time 300\n}\n",
    );
    let main = dir.write(
        "multipath.conf",
        &format!("defaults {{\n config_dir \"{}\"\n}}\n", extra.display()),
    );
    let config = Config::load(&main).unwrap();
    assert_eq!(names(&config), vec!["multipath.conf", "a.conf"]);
    assert_eq!(config.warnings().len(), 1, "{:?}", config.warnings());
    assert!(
        config.warnings()[0]
            .message
            .contains("only read in the main configuration file")
    );

    let main = dir.write("none.conf", "defaults {\n config_dir \"\"\n}\n");
    assert_eq!(names(&Config::load(&main).unwrap()), vec!["none.conf"]);
}

#[test]
fn missing_files() {
    let dir = TempDir::new();
    let missing = dir.0.join("multipath.conf");
    // The default file may be absent: no settings.
    let options = LoadOptions {
        file: missing.clone(),
        required: false,
        config_dir: None,
        ..LoadOptions::default()
    };
    assert!(Config::load_with(&options).unwrap().files().is_empty());
    // A file asked for by name may not.
    assert!(matches!(
        Config::load(&missing),
        Err(ConfigError::Io { .. })
    ));
    let args = ConfigArgs {
        config: Some(missing),
        ..Default::default()
    };
    assert!(args.load().is_err());
    // Nor may a directory asked for by name.
    let main = dir.write("multipath.conf", "");
    let options = LoadOptions {
        file: main,
        required: true,
        config_dir: Some(dir.0.join("no-such-dir")),
        ..LoadOptions::default()
    };
    assert!(matches!(
        Config::load_with(&options),
        Err(ConfigError::Io { .. })
    ));
}

#[test]
fn errors_in_conf_d_name_that_file() {
    let dir = TempDir::new();
    let main = dir.write("multipath.conf", "defaults {\n}\n");
    dir.write(
        "conf.d/x.conf",
        "defaults {\n\n marginal_path_err_rate_threshold -3\n}\n",
    );
    let options = LoadOptions {
        file: main,
        required: true,
        config_dir: Some(dir.0.join("conf.d")),
        ..LoadOptions::default()
    };
    let error = Config::load_with(&options).unwrap_err();
    let first = error.errors().next().unwrap();
    assert!(first.file.ends_with("conf.d/x.conf"));
    assert_eq!(first.line, 3);
}

#[test]
fn reload_keeps_the_old_settings_on_error() {
    let dir = TempDir::new();
    let main = dir.write("multipath.conf", ALL_FOUR);
    std::fs::create_dir_all(dir.0.join("conf.d")).unwrap();
    // multipathd's files named, so the host's (and its socket) play no part.
    let args = ConfigArgs {
        config: Some(main.clone()),
        config_dir: Some(dir.0.join("conf.d")),
        multipath_conf: Some(dir.write("mpd/multipath.conf", "defaults {\n}\n")),
        multipath_conf_dir: Some(dir.0.join("conf.d")),
        ..Default::default()
    };
    let mut config = args.load().unwrap();
    assert!(config.resolve(&netapp()).params().is_some());

    dir.write(
        "multipath.conf",
        "defaults {\n marginal_path_err_sample_time x\n",
    );
    assert!(args.reload(&mut config).is_err());
    assert_eq!(
        config.resolve(&netapp()).params().map(|p| p.sample_time),
        Some(Duration::from_secs(300))
    );

    dir.write("multipath.conf", &ALL_FOUR.replace("300", "500"));
    args.reload(&mut config).unwrap();
    assert_eq!(
        config.resolve(&netapp()).params().map(|p| p.sample_time),
        Some(Duration::from_secs(500))
    );
    assert_eq!(config.files(), &[main][..]);
}

#[test]
fn non_utf8_bytes_do_not_stop_parsing() {
    let dir = TempDir::new();
    let path = dir.0.join("multipath.conf");
    std::fs::write(
        &path,
        b"# caf\xe9\ndefaults {\n marginal_path_err_sample_time 300 \xff\n}\n",
    )
    .unwrap();
    std::fs::create_dir(dir.0.join("conf.d")).unwrap();
    let options = LoadOptions {
        file: path,
        required: true,
        config_dir: Some(dir.0.join("conf.d")),
        ..LoadOptions::default()
    };
    let config = Config::load_with(&options).unwrap();
    assert_eq!(
        config
            .resolve(&netapp())
            .get(Key::ErrSampleTime)
            .map(|s| s.value),
        Some(Setting::Value(300))
    );
}
