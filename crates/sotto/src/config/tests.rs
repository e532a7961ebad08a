//! Unit tests of loading, layering, validation and the value formats.

use super::*;
use sotto_governor::{parse_bytes, parse_percent};

pub(crate) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut e: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    e.entry("HOME".into()).or_insert_with(|| "/nonexistent".into());
    e
}

pub(crate) fn sets(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn load_err(file: Option<&Path>, e: &[(&str, &str)], cli: &[(&str, &str)]) -> String {
    Config::load_from(file, &env(e), &sets(cli)).unwrap_err().to_string()
}

/// A file only its owner can read, as a file holding a token must be.
pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    chmod(&path, 0o600);
    path
}

pub(crate) fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every section but the bookkeeping (sources, file).
pub(crate) fn same_values(a: &Config, b: &Config) {
    assert_eq!(
        (&a.server, &a.model, &a.budget, &a.cache, &a.analyze),
        (&b.server, &b.model, &b.budget, &b.cache, &b.analyze)
    );
}

#[test]
fn precedence_is_defaults_file_env_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "sotto.toml", "[budget]\ncpu_mean = \"20%\"\ncpu_peak = 40\n[server]\nqueue = 4\n");
    let e = env(&[("SOTTO_BUDGET_CPU_MEAN", "25%"), ("SOTTO_MODELS", "/x"), ("SOTTO_CONFIG", "/nowhere")]);
    let c = Config::load_from(Some(&file), &e, &sets(&[("budget.cpu_peak", "45%")])).unwrap();
    assert_eq!((c.budget.cpu_mean, c.budget.cpu_peak, c.server.queue), (0.25, 0.45, 4));
    assert_eq!(c.server.listen.port(), 8434);
    assert_eq!(c.sources["budget.cpu_mean"], Source::Env("SOTTO_BUDGET_CPU_MEAN".into()));
    assert_eq!(c.sources["budget.cpu_peak"], Source::Cli);
    assert_eq!(c.sources["server.queue"], Source::File(file.clone()));
    assert_eq!(c.sources["server.listen"], Source::Default);
    assert_eq!(c.file, Some(file));
}

#[test]
fn the_file_comes_from_the_flag_the_variable_or_the_default_place() {
    let dir = tempfile::tempdir().unwrap();
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("sotto")).unwrap();
    let default = write(&xdg.join("sotto"), "sotto.toml", "[server]\nqueue = 3\n");
    let named = write(dir.path(), "named.toml", "[server]\nqueue = 5\n");
    let xdg_s = xdg.to_str().unwrap();
    let c = Config::load_from(None, &env(&[("XDG_CONFIG_HOME", xdg_s)]), &[]).unwrap();
    assert_eq!((c.server.queue, c.file), (3, Some(default)));
    let e = env(&[("XDG_CONFIG_HOME", xdg_s), ("SOTTO_CONFIG", named.to_str().unwrap())]);
    assert_eq!(Config::load_from(None, &e, &[]).unwrap().server.queue, 5);
    // Absent default file: defaults only. Absent named file: an error.
    let c = Config::load_from(None, &env(&[("XDG_CONFIG_HOME", "/nonexistent")]), &[]).unwrap();
    assert_eq!((c.server.queue, c.file), (8, None));
    let err = load_err(Some(Path::new("/nonexistent/sotto.toml")), &[], &[]);
    assert!(err.starts_with("config file /nonexistent/sotto.toml: cannot read it"), "{err}");
}

#[test]
fn errors_name_the_key_and_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "sotto.toml", "[budget]\ncpu_mean = \"135%\"\n");
    let err = load_err(Some(&file), &[], &[]);
    let want = format!("config file {}: budget.cpu_mean: \"135%\" is not a percentage in (0, 100]", file.display());
    assert!(err.starts_with(&want), "{err}");
    let err = load_err(None, &[("SOTTO_SERVER_LISTEN", "localhost")], &[]);
    assert!(err.starts_with("environment SOTTO_SERVER_LISTEN: server.listen: \"localhost\""), "{err}");
    let err = load_err(None, &[], &[("model.keep_alive", "5 parsecs")]);
    assert!(err.starts_with("--set: model.keep_alive: \"5 parsecs\" is not a duration"), "{err}");
    assert!(load_err(None, &[], &[("server.queue", "0")]).contains("from 1 to 1024"));
    assert!(load_err(None, &[], &[("server.max_body", "100")]).contains("1KiB"));
    assert!(load_err(None, &[], &[("analyze.mode", "slow")]).contains("analyze.mode"));
    assert!(load_err(None, &[], &[("server.token", "short")]).contains("16 characters"));
    let err = load_err(None, &[], &[("budget.cpu_mean", "60%")]);
    assert!(err.contains("budget.cpu_mean = 60% (flag)") && err.contains("budget.cpu_peak = 50% (default)"), "{err}");
    let err = load_err(None, &[], &[("budget.cpu_mean_background", "60%")]);
    assert!(err.contains("budget.cpu_mean_background = 60% (flag)") && err.contains("background mean"), "{err}");
    assert!(load_err(None, &[], &[("budget.cgroup", "yes")]).contains("off, auto or require"));
    assert!(load_err(None, &[], &[("server.header_timeout", "0s")]).contains("longer than 0"));
    assert!(load_err(None, &[], &[("server.max_connections", "0")]).contains("server.max_connections"));
    assert!(load_err(None, &[], &[("server.sandbox", "maybe")]).contains("off, auto or require"));
    let c = Config::load_from(None, &env(&[]), &sets(&[("budget.cpu_mean_critical", "50%")])).unwrap();
    assert_eq!(c.budgets().mean_for(sotto_governor::Priority::Critical), 0.5);
    assert_eq!(c.budgets().mean_for(sotto_governor::Priority::Background), 0.35);
    assert_eq!(c.value("budget.cpu_mean_background"), "same");
}

#[test]
fn unknown_keys_and_variables_are_errors_with_suggestions() {
    let err = load_err(None, &[], &[("server.listn", "x")]);
    assert!(err.contains("unknown key `server.listn`; did you mean server.listen?"), "{err}");
    let err = load_err(None, &[], &[("server.colour", "blue")]);
    assert!(err.contains("server.listen") && err.contains("server.queue"), "lists the section: {err}");
    let err = load_err(None, &[], &[("listen", "x")]);
    assert!(err.contains("did you mean server.listen?"), "{err}");
    let err = load_err(None, &[], &[("colour", "x")]);
    assert!(err.contains("sections are server, model, budget, cache, analyze"), "{err}");
    let err = load_err(None, &[("SOTTO_SERVER_LISTN", "x")], &[]);
    assert!(err.contains("SOTTO_SERVER_LISTN") && err.contains("did you mean SOTTO_SERVER_LISTEN?"), "{err}");
    assert!(load_err(None, &[("SOTTO_CACHE_MEMORY_LIMIT", "1")], &[]).contains("SOTTO_CACHE_PREFIX"));
    // Not configuration keys: left alone.
    let e = [("SOTTO_MODELS", "/m"), ("SOTTO_CONFIG", ""), ("SOTTO_TEST_DAEMON", "1"), ("SOTTO_X", "1")];
    Config::load_from(None, &env(&e), &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (text, want) in [
        ("[serve]\nlisten = \"x\"\n", "unknown key `serve.listen`; did you mean server.listen?"),
        ("listen = \"127.0.0.1:1\"\n", "unknown key `listen`"),
        ("[model]\npath = [\"a\"]\n", "model.path: expected a string, number or boolean, found array"),
        ("[model\n", "config file"),
    ] {
        let err = load_err(Some(&write(dir.path(), "bad.toml", text)), &[], &[]);
        assert!(err.contains(want), "{text:?}: {err}");
    }
}

#[test]
fn remote_listening_needs_both_permission_and_a_token() {
    let remote = ("server.listen", "0.0.0.0:8434");
    let err = load_err(None, &[], &[remote]);
    assert!(err.contains("server.allow_remote = true") && err.contains("token"), "{err}");
    let err = load_err(None, &[], &[remote, ("server.allow_remote", "true")]);
    assert!(err.contains("now unset"), "{err}");
    let err = load_err(None, &[], &[remote, ("server.token", "0123456789abcdef")]);
    assert!(err.contains("now false"), "{err}");
    let ok = [remote, ("server.allow_remote", "true"), ("server.token", "0123456789abcdef")];
    let c = Config::load_from(None, &env(&[]), &sets(&ok)).unwrap();
    assert_eq!(c.server.token.as_deref(), Some("0123456789abcdef"));
}

#[test]
fn the_token_file_is_read_trimmed_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "token", "  0123456789abcdef-x \n");
    let c = Config::load_from(None, &env(&[("SOTTO_SERVER_TOKEN_FILE", good.to_str().unwrap())]), &[]).unwrap();
    assert_eq!(c.server.token.as_deref(), Some("0123456789abcdef-x"));
    let mut again = c.clone();
    again.validate().unwrap();
    assert_eq!(again, c, "validate is idempotent");
    let empty = write(dir.path(), "empty", "\n");
    let err = load_err(None, &[("SOTTO_SERVER_TOKEN_FILE", empty.to_str().unwrap())], &[]);
    assert!(err.starts_with("environment SOTTO_SERVER_TOKEN_FILE: server.token_file:"), "{err}");
    let err = load_err(None, &[], &[("server.token_file", "/nonexistent/token")]);
    assert!(err.contains("server.token_file: cannot read /nonexistent/token"), "{err}");
    let both = [("server.token_file", good.to_str().unwrap()), ("server.token", "0123456789abcdef")];
    assert!(load_err(None, &[], &both).contains("both set"));
}

/// Issue 11, item 8: a token other users can read is no secret.
#[test]
fn a_token_file_or_a_config_file_with_a_token_that_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let token = write(dir.path(), "token", "0123456789abcdef-x\n");
    let env_file = env(&[("SOTTO_SERVER_TOKEN_FILE", token.to_str().unwrap())]);
    Config::load_from(None, &env_file, &[]).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o620] {
        chmod(&token, mode);
        let err = Config::load_from(None, &env_file, &[]).unwrap_err().to_string();
        let fix = format!("run `chmod 600 {}`", token.display());
        assert!(err.contains("server.token_file") && err.contains(&fix), "{mode:o}: {err}");
        assert!(err.contains(&format!("mode {mode:03o}")), "{err}");
    }
    let file = write(dir.path(), "sotto.toml", "[server]\ntoken = \"0123456789abcdef\"\n");
    Config::load_from(Some(&file), &env(&[]), &[]).unwrap();
    chmod(&file, 0o644);
    let err = load_err(Some(&file), &[], &[]);
    assert!(err.starts_with(&format!("config file {}: it sets server.token", file.display())), "{err}");
    assert!(err.contains(&format!("chmod 600 {}", file.display())), "{err}");
    // Without a secret, a config file may be readable by all, as files under /etc are.
    let plain = write(dir.path(), "plain.toml", "[server]\nqueue = 3\n");
    chmod(&plain, 0o644);
    assert_eq!(Config::load_from(Some(&plain), &env(&[]), &[]).unwrap().server.queue, 3);
}

#[test]
fn durations_parse_and_print_back() {
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
    assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
    assert_eq!(parse_duration(" 2 ").unwrap(), Duration::from_secs(2));
    assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
    for bad in ["soon", "", "-1s", "5 parsecs", "1e999"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    for ms in [0, 1, 999, 1000, 1500, 60_000, 90_000, 3_600_000, 5_400_000] {
        let d = Duration::from_millis(ms);
        assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
    }
    assert_eq!(format_duration(Duration::from_secs(90)), "90s");
}

#[test]
fn sizes_and_percentages_print_back_exactly() {
    for b in [0, 1, 1000, 1 << 10, 1536, 1 << 20, 6 << 30, (3 << 30) / 2] {
        assert_eq!(parse_bytes(&format_bytes(b)).unwrap(), b, "{b}");
    }
    assert_eq!(format_bytes(6 << 30), "6GiB");
    for f in [0.35, 0.5, 0.125, 1.0, 0.005, 1.0 / 3.0] {
        assert_eq!(parse_percent(&format_percent(f)).unwrap(), f, "{f}");
    }
    assert_eq!(format_percent(0.35), "35%");
}

#[test]
fn every_key_has_a_default_equal_to_the_built_in_value() {
    let defaults = Config::defaults();
    assert_eq!(defaults.sources.len(), KEYS.len());
    for k in KEYS {
        assert_eq!(k.env(), format!("SOTTO_{}", k.name.replace('.', "_").to_uppercase()));
        let mut c = Config::defaults();
        c.set(k.name, k.default, Source::Default).unwrap_or_else(|e| panic!("{e}"));
        same_values(&c, &defaults);
        assert_eq!(defaults.value(k.name), k.default, "{} prints its default as written", k.name);
    }
}

#[test]
fn a_command_flag_overrides_set_and_its_errors_name_the_flag() {
    let e = env(&[("SOTTO_ANALYZE_MODE", "naive")]);
    let flags = [("analyze.mode", "--mode", "fast".to_string())];
    let c = Config::load_layers(None, &e, &sets(&[("analyze.mode", "retrieval")]), &flags).unwrap();
    assert_eq!(c.analyze.mode, sotto_analyze::Mode::Fast);
    assert_eq!(c.sources["analyze.mode"], Source::Flag("--mode"));
    assert_eq!(c.source("analyze.mode").to_string(), "flag");
    let flags = [("model.threads", "--threads", "0".to_string())];
    let err = Config::load_layers(None, &env(&[]), &[], &flags).unwrap_err().to_string();
    assert!(err.starts_with("--threads: model.threads: \"0\" is not a whole number"), "{err}");
}

/// Issue 12: each default lives in the library type that uses it; `KEYS` shows the same
/// values (`every_key_has_a_default_equal_to_the_built_in_value`).
#[test]
fn the_defaults_are_the_library_types_defaults() {
    let c = Config::defaults();
    let b = Budgets::default();
    assert_eq!((c.budget.cpu_mean, c.budget.cpu_peak, c.budget.memory), (b.cpu_mean, b.cpu_peak, b.mem));
    let s = sotto_server::Settings::default();
    assert_eq!((c.server.max_body, c.server.max_tokens), (s.max_body as u64, s.max_tokens));
    assert_eq!((c.server.header_timeout, c.server.body_timeout), (s.header_timeout, s.body_timeout));
    assert_eq!((c.server.max_connections, c.analyze.detail), (s.max_connections, s.default_detail));
    let e = EngineConfig::new("model.gguf");
    assert_eq!((c.model.chunk, c.model.n_ctx, c.server.queue), (e.chunk, e.n_ctx, e.queue));
    assert_eq!((c.cache.prefix, c.cache.disk, &c.model.template), (e.prefix_cache as u64, e.prefix_disk, &e.template));
}
