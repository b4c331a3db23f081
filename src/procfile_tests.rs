use super::*;

fn err(text: &str) -> String {
    Procfile::parse(text).unwrap_err().to_string()
}

#[test]
fn parses_types_commands_and_comments() {
    let p = Procfile::parse(
        "# processes\n\nweb: bin/web --port $PORT\n  worker:bin/worker 'a b' \"c\"\nrelease: bin/migrate\n",
    )
    .unwrap();
    let web = p.get("web").unwrap();
    assert_eq!(web.program, "bin/web");
    assert_eq!(web.args, ["--port", "$PORT"]);
    assert_eq!(web.line, "bin/web --port $PORT");
    assert_eq!(web.to_string(), "bin/web --port $PORT");
    assert_eq!(web.component_path(), "bin/web.wasm");
    assert_eq!(p.get("worker").unwrap().args, ["a b", "c"]);
    assert_eq!(p.get("clock"), None);
    let order: Vec<&str> = p.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(order, ["web", "worker", "release"]);
}

#[test]
fn windows_line_ends_and_a_byte_order_mark_are_accepted() {
    let p = Procfile::parse("\u{feff}web: bin/web a\r\n# c\r\nworker: bin/w\r\n").unwrap();
    assert_eq!(
        p.to_map(),
        BTreeMap::from([
            ("web".to_owned(), "bin/web a".to_owned()),
            ("worker".to_owned(), "bin/w".to_owned()),
        ])
    );
    assert!(Procfile::parse("\n# only comments\n\n").unwrap().is_empty());
}

#[test]
fn errors_name_line_and_column() {
    assert_eq!(
        err("web: bin/web\nworker bin/worker\n"),
        "Procfile line 2, column 1: expected `name: command`, found \"worker bin/worker\" \
         (no ':' after the process type)"
    );
    assert_eq!(
        err("web server: bin/web"),
        "Procfile line 1, column 1: \"web server\" is not a valid process type name: use 1 \
         to 63 letters, digits, '-' and '_'"
    );
    assert_eq!(
        err("  : bin/web"),
        "Procfile line 1, column 3: \"\" is not a valid process type name: use 1 to 63 \
         letters, digits, '-' and '_'"
    );
    assert_eq!(
        err("web: bin/a\n# c\nweb: bin/b"),
        "Procfile line 3, column 1: process type web is defined twice (first on line 1); keep one"
    );
    assert_eq!(
        err("web:   "),
        "Procfile line 1, column 5: web: expected a command after ':', found nothing"
    );
    assert_eq!(
        err("web: bin/web 'open"),
        "Procfile line 1, column 14: web: the quote ' opened here is never closed"
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    assert_eq!(
        err("web: bïn/x 'open"),
        "Procfile line 1, column 12: web: the quote ' opened here is never closed"
    );
}

#[test]
fn programs_outside_the_slug_are_refused() {
    for program in [
        "../../etc/passwd",
        "/etc/passwd",
        "bin/../../x",
        "/app/../x",
        "/app",
        ".",
    ] {
        assert_eq!(
            err(&format!("web: bin/ok\nworker:  {program} a")),
            format!(
                "Procfile line 2, column 10: worker: {program:?} does not name a component in \
                 the slug: use a path inside the app, like bin/web"
            )
        );
    }
}

#[test]
fn component_paths_are_normalised() {
    for (program, path) in [
        ("bin/web", "bin/web.wasm"),
        ("bin/web.wasm", "bin/web.wasm"),
        ("./bin/web", "bin/web.wasm"),
        ("/app/bin/web", "bin/web.wasm"),
        ("bin//./web", "bin/web.wasm"),
        ("server", "server.wasm"),
    ] {
        let c = Command::parse(program).unwrap();
        assert_eq!(c.component_path(), path, "{program}");
        assert_eq!(c.program, program);
    }
}

#[test]
fn one_off_commands_parse_like_procfile_commands() {
    let c = Command::parse("  bin/task a 'b c'  ").unwrap();
    assert_eq!(
        (c.program.as_str(), c.args.clone()),
        ("bin/task", vec!["a".to_owned(), "b c".to_owned()])
    );
    assert_eq!(c.line, "bin/task a 'b c'");
    assert_eq!(Command::parse("   ").unwrap_err(), "expected a command");
    assert_eq!(
        Command::parse("/bin/sh -c x").unwrap_err(),
        "\"/bin/sh\" does not name a component in the slug: use a path inside the app, like bin/web"
    );
}

#[test]
fn defaults_round_trip_and_are_checked() {
    let map = BTreeMap::from([
        ("web".to_owned(), "bin/web --port $PORT".to_owned()),
        ("worker".to_owned(), "bin/worker".to_owned()),
    ]);
    let p = Procfile::from_defaults(&map).unwrap();
    assert_eq!(p.to_map(), map);
    assert_eq!(p.get("web").unwrap().args, ["--port", "$PORT"]);
    let bad_name = BTreeMap::from([("a:b".to_owned(), "bin/x".to_owned())]);
    assert_eq!(
        Procfile::from_defaults(&bad_name).unwrap_err().to_string(),
        "Procfile line 1, column 1: \"a:b\" is not a valid process type name: use 1 to 63 \
         letters, digits, '-' and '_'"
    );
    let two_lines = BTreeMap::from([("web".to_owned(), "bin/web\nevil: bin/x".to_owned())]);
    assert_eq!(
        Procfile::from_defaults(&two_lines).unwrap_err().to_string(),
        "Procfile line 1, column 1: web: a command is one line, found a line break"
    );
    let empty = BTreeMap::from([("web".to_owned(), " ".to_owned())]);
    assert_eq!(
        Procfile::from_defaults(&empty).unwrap_err().to_string(),
        "Procfile line 1, column 5: web: expected a command after ':', found nothing"
    );
}

#[test]
fn unknown_component_names_what_was_built() {
    let p = Procfile::parse("web: bin/web\nworker: bin/server").unwrap();
    let built = vec!["bin/web.wasm".to_owned(), "bin/app.wasm".to_owned()];
    let e = p
        .check_components(&built, |c| (c == "bin/web.wasm").then_some(Ok(())))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Procfile line 2, column 9: worker: bin/server — no component bin/server.wasm in \
         the slug (built: bin/web.wasm, bin/app.wasm)"
    );
    let e = p.check_components(&[], |_| None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Procfile line 1, column 6: web: bin/web — no component bin/web.wasm in the slug \
         (built: nothing)"
    );
}

#[test]
fn a_component_that_is_not_a_dyno_is_named() {
    let p = Procfile::parse("web: bin/web").unwrap();
    let e = p
        .check_components(&["bin/web.wasm".to_owned()], |_| {
            Some(Err("a core module, not a component".into()))
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Procfile line 1, column 6: web: bin/web.wasm is a core module, not a component"
    );
    assert_eq!(p.check_components(&[], |_| Some(Ok(()))), Ok(()));
}

#[test]
fn expands_env_in_args() {
    let env = BTreeMap::from([
        ("PORT".to_owned(), "5001".to_owned()),
        ("NAME".to_owned(), "x".to_owned()),
    ]);
    let c = Command::parse("bin/web $PORT ${NAME}-y $MISSING $ a$ ${OPEN ${} $NAME.$PORT").unwrap();
    assert_eq!(
        c.argv(&env),
        [
            "bin/web", "5001", "x-y", "", "$", "a$", "${OPEN", "${}", "x.5001"
        ]
    );
    assert_eq!(expand("$PORT$PORT", &env), "50015001");
}
