use super::*;

#[test]
fn a_step_sees_its_own_dirs_and_no_home() {
    let s = Sandbox {
        bwrap: "/usr/bin/bwrap".into(),
        setpriv: Some("/usr/bin/setpriv".into()),
        etc: "/h/sandbox".into(),
        rust: Some("/r/tc".into()),
        cgroups: None,
    };
    let dirs = Dirs {
        build: Path::new("/h/builds/a-1/app"),
        cache: Path::new("/c/a"),
        env: Path::new("/h/builds/a-1/env"),
    };
    let argv = |step| -> Vec<String> {
        s.argv(step, Path::new("/h/buildpacks/rust"), dirs, None)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    };
    let compile = argv(Step::Compile);
    let joined = compile.join(" ");
    for want in [
        "--bind /h/builds/a-1/app /build",
        "--bind /c/a /cache",
        "--ro-bind /h/builds/a-1/env /env",
        "--ro-bind /h/buildpacks/rust /buildpack",
        "--ro-bind /r/tc /opt/rust",
        "--ro-bind /h/sandbox/passwd /etc/passwd",
        "--setenv PATH /opt/rust/bin:/usr/local/bin:/usr/bin:/bin",
        "--setenv CARGO_HOME /cache/cargo-home",
        "--reuid 64000 --regid 64000",
        "-- /buildpack/bin/compile /build /cache /env",
    ] {
        assert!(joined.contains(want), "{want:?} missing from {joined}");
    }
    assert!(joined.contains("--clearenv"));
    assert!(!compile.contains(&"--unshare-net".to_owned()));
    // Of the home, only these: never the token, the ledger, all caches.
    let home: Vec<&String> = compile.iter().filter(|a| a.starts_with("/h")).collect();
    assert_eq!(
        home,
        [
            "/h/sandbox/passwd",
            "/h/sandbox/group",
            "/h/buildpacks/rust",
            "/h/builds/a-1/app",
            "/h/builds/a-1/env"
        ]
    );
    let with_tools: Vec<String> = s
        .argv(
            Step::Compile,
            Path::new("/h/buildpacks/js"),
            dirs,
            Some(Path::new("/c/.tools/js-0123")),
        )
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let joined = with_tools.join(" ");
    assert!(
        joined.contains("--ro-bind /c/.tools/js-0123 /tools"),
        "{joined}"
    );
    // Set after --clearenv, or bwrap would clear it.
    let clear = joined.find("--clearenv").unwrap();
    assert!(joined.find("--setenv WDYNO_TOOLS /tools").unwrap() > clear);
    let detect = argv(Step::Detect);
    assert!(detect.contains(&"--unshare-net".to_owned()));
    assert!(
        detect
            .join(" ")
            .ends_with("-- /buildpack/bin/detect /build")
    );
}

/// Installing the tools sees none of an app's dirs, only its own.
#[test]
fn installing_tools_sees_only_the_dir_it_installs_into() {
    let s = Sandbox {
        bwrap: "/usr/bin/bwrap".into(),
        setpriv: Some("/usr/bin/setpriv".into()),
        etc: "/h/sandbox".into(),
        rust: None,
        cgroups: None,
    };
    let argv: Vec<String> = s
        .tools_argv(
            Path::new("/h/buildpacks/js"),
            Path::new("/c/.tools/js-1.installing"),
        )
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let joined = argv.join(" ");
    assert!(
        joined.contains("--bind /c/.tools/js-1.installing /tools"),
        "{joined}"
    );
    assert!(joined.contains("--chdir /tools"), "{joined}");
    assert!(
        joined.ends_with("-- /buildpack/bin/tools /tools"),
        "{joined}"
    );
    assert!(!argv.contains(&"--unshare-net".to_owned()));
    for app_dir in [BUILD, CACHE, ENV] {
        assert!(!argv.contains(&app_dir.to_owned()), "{app_dir} in {joined}");
    }
}
