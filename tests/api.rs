//! The control API's Heroku Platform API v3 shapes, in process: what the
//! `heroku` CLI and scripts written for Heroku read (ids, owners, URLs,
//! pages by `Range`, error ids).

mod common;

use common::inproc::Inproc;
use serde_json::{Value, json};

/// One raw request to the API: status, headers (lower-cased names) and
/// the JSON body.
async fn call(
    p: &Inproc,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Vec<(String, String)>, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = p.api_addr();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("{head}\r\n{body}").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    (
        status,
        headers,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_in_herokus_shapes() {
    let p = Inproc::start().await;
    let auth = format!("Bearer {}", p.platform.token());
    let auth = [("Authorization", auth.as_str())];
    let get = |path: &'static str| call(&p, "GET", path, &auth, None);

    // No token: Heroku's error shape.
    let (status, _, body) = call(&p, "GET", "/apps", &[], None).await;
    assert_eq!((status, body["id"].as_str()), (401, Some("unauthorized")));

    let (status, _, account) = get("/account").await;
    assert_eq!(status, 200);
    let email = account["email"].as_str().unwrap().to_owned();
    assert!(email.contains('@'), "{account}");

    // An app: id, owner, the router's real URL, the git repo, a stack.
    let (status, _, app) = call(&p, "POST", "/apps", &auth, Some(json!({"name": "pages"}))).await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["owner"]["email"], email.as_str());
    assert_eq!(app["owner"]["id"], account["id"]);
    assert_eq!(
        app["web_url"],
        format!("http://pages.localhost:{}/", p.router).as_str()
    );
    assert!(
        app["git_url"]
            .as_str()
            .unwrap()
            .ends_with("/repos/pages.git"),
        "{app}"
    );
    assert_eq!(app["stack"]["name"], "wasi-0.2");
    let id = app["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "{id}");
    let (status, _, by_id) = call(&p, "GET", &format!("/apps/{id}"), &auth, None).await;
    assert_eq!((status, by_id["name"].as_str()), (200, Some("pages")));

    // No name: one is made up.
    let (status, _, made) = call(&p, "POST", "/apps", &auth, Some(json!({}))).await;
    assert_eq!(status, 201, "{made}");
    let made_up = made["name"].as_str().unwrap();
    assert_eq!(made_up.split('-').count(), 3, "{made_up}");

    // Config changes answer the new map; each is a release.
    for i in 1..=5 {
        let (status, _, config) = call(
            &p,
            "PATCH",
            "/apps/pages/config-vars",
            &auth,
            Some(json!({"N": i.to_string()})),
        )
        .await;
        assert_eq!((status, config), (200, json!({"N": i.to_string()})));
    }

    // Pages of releases, newest first, by Range and Next-Range.
    let mut range = "version ..; max=2, order=desc".to_owned();
    let mut pages = Vec::new();
    loop {
        let (status, headers, page) = call(
            &p,
            "GET",
            "/apps/pages/releases",
            &[auth[0], ("Range", &range)],
            None,
        )
        .await;
        let versions: Vec<u64> = page
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["version"].as_u64().unwrap())
            .collect();
        pages.push((status, versions));
        match header(&headers, "next-range") {
            Some(next) => range = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(
        pages,
        vec![(206, vec![5, 4]), (206, vec![3, 2]), (200, vec![1])]
    );

    // A release by version or id, its config vars, `current`.
    let (_, _, v3) = get("/apps/pages/releases/3").await;
    assert_eq!(
        (v3["version"].as_u64(), v3["current"].as_bool()),
        (Some(3), Some(false))
    );
    assert_eq!(v3["user"]["email"], email.as_str());
    let (status, _, same) = call(
        &p,
        "GET",
        &format!("/apps/pages/releases/{}", v3["id"].as_str().unwrap()),
        &auth,
        None,
    )
    .await;
    assert_eq!((status, same["version"].as_u64()), (200, Some(3)));
    let (_, _, config) = get("/apps/pages/releases/v3/config-vars").await;
    assert_eq!(config, json!({"N": "3"}));
    let (_, _, v5) = get("/apps/pages/releases/5").await;
    assert_eq!(v5["current"], true);

    // What wdyno has none of is an empty list; the router's domain is real.
    assert_eq!(get("/apps/pages/addons").await.2, json!([]));
    assert_eq!(get("/apps/pages/collaborators").await.2, json!([]));
    let (_, _, domains) = get("/apps/pages/domains").await;
    assert_eq!(domains[0]["hostname"], "pages.localhost");

    // Errors name what is wrong, with Heroku's ids.
    let (status, _, e) = get("/apps/nope").await;
    assert_eq!((status, e["id"].as_str()), (404, Some("not_found")));
    let (status, _, e) = call(
        &p,
        "PATCH",
        "/apps/pages/formation",
        &auth,
        Some(json!({"updates": [{"type": "web", "quantity": "lots"}]})),
    )
    .await;
    assert_eq!(
        (status, e["id"].as_str()),
        (422, Some("invalid_params")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("\"lots\""), "{e}");
    let (status, _, e) = get("/apps/pages/releases/99").await;
    assert_eq!((status, e["id"].as_str()), (404, Some("not_found")));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_types_formation_entry_and_dynos_by_name_including_one_offs() {
    let p = Inproc::start().await;
    let auth = format!("Bearer {}", p.platform.token());
    let auth = [("Authorization", auth.as_str())];
    let web = common::prebuilt(&common::built_app("probe").join("bin/web.wasm"));
    std::fs::copy(
        common::built_app("probe").join("bin/probe.wasm"),
        web.path().join("bin/probe.wasm"),
    )
    .unwrap();
    p.create_and_deploy("types", web.path()).await;

    let (status, _, list) = call(&p, "GET", "/apps/types/formation", &auth, None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        (
            &list[0]["type"],
            &list[0]["quantity"],
            &list[0]["size"],
            &list[0]["command"]
        ),
        (&json!("web"), &json!(1), &json!("Basic"), &json!("bin/web"))
    );

    // A change relative to the formation, as a string.
    let (status, _, web1) = call(
        &p,
        "PATCH",
        "/apps/types/formation/web",
        &auth,
        Some(json!({"quantity": "+1"})),
    )
    .await;
    assert_eq!((status, &web1["quantity"]), (200, &json!(2)), "{web1}");
    let (_, _, got) = call(&p, "GET", "/apps/types/formation/web", &auth, None).await;
    assert_eq!(got["quantity"], 2);
    common::until("web=2 up", 30, || {
        let ps = p.service.manager().ps(&"types".parse().unwrap());
        (ps.len() == 2 && ps.iter().all(|d| d.state == "up")).then_some(())
    })
    .await;

    // A dyno by name: formation and one-off.
    let (status, _, d1) = call(&p, "GET", "/apps/types/dynos/web.2", &auth, None).await;
    assert_eq!(
        (
            status,
            d1["type"].as_str(),
            d1["release"]["version"].as_u64()
        ),
        (200, Some("web"), Some(1))
    );
    let (status, _, run) = call(
        &p,
        "POST",
        "/apps/types/dynos",
        &auth,
        Some(json!({"command": "bin/probe sleep 600000", "attach": false})),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let name = run["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("run."), "{run}");
    let (status, _, same) =
        call(&p, "GET", &format!("/apps/types/dynos/{name}"), &auth, None).await;
    assert_eq!(
        (status, same["command"].as_str(), same["type"].as_str()),
        (200, Some("bin/probe sleep 600000"), Some("run"))
    );
    let (status, _, e) = call(
        &p,
        "POST",
        "/apps/types/dynos",
        &auth,
        Some(json!({"command": "bin/web", "attach": true})),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        e["message"].as_str().unwrap().contains("run:detached"),
        "{e}"
    );

    // Every dyno of a type stopped (and, being formation dynos, started
    // again); all of a type restarted.
    let (status, _, stopped) = call(
        &p,
        "POST",
        "/apps/types/formations/web/actions/stop",
        &auth,
        None,
    )
    .await;
    assert_eq!((status, stopped), (200, json!({"stopped": 2})));
    let (status, _, restarted) =
        call(&p, "DELETE", "/apps/types/formations/web", &auth, None).await;
    assert_eq!(status, 200, "{restarted}");
    let (status, _, e) = call(&p, "GET", "/apps/types/formation/clock", &auth, None).await;
    assert_eq!((status, e["id"].as_str()), (404, Some("not_found")));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_sleep_after_round_trips_and_a_bad_one_changes_nothing() {
    let p = Inproc::start().await;
    let auth = format!("Bearer {}", p.platform.token());
    let auth = [("Authorization", auth.as_str())];
    let (status, _, app) = call(&p, "POST", "/apps", &auth, Some(json!({"name": "sleepy"}))).await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["sleep_after"], "off");

    let patch = |body: Value| call(&p, "PATCH", "/apps/sleepy", &auth, Some(body));
    let (status, _, app) = patch(json!({"sleep_after": "30m"})).await;
    assert_eq!((status, &app["sleep_after"]), (200, &json!("30m")), "{app}");
    // Printed in the largest unit that divides it.
    let (status, _, app) = patch(json!({"sleep_after": "120s"})).await;
    assert_eq!((status, &app["sleep_after"]), (200, &json!("2m")), "{app}");
    let (status, _, app) = call(&p, "GET", "/apps/sleepy", &auth, None).await;
    assert_eq!((status, &app["sleep_after"]), (200, &json!("2m")), "{app}");

    // A bad value, alone or beside a good field, changes nothing.
    for body in [
        json!({"sleep_after": "abc"}),
        json!({"sleep_after": "abc", "routing": "least-connections"}),
    ] {
        let (status, _, e) = patch(body).await;
        assert_eq!(
            (status, e["id"].as_str(), e["message"].as_str()),
            (
                422,
                Some("invalid_params"),
                Some("sleep_after: \"abc\" is not a duration; use 30m, 90s, 1h or off")
            ),
            "{e}"
        );
    }
    let (_, _, app) = call(&p, "GET", "/apps/sleepy", &auth, None).await;
    assert_eq!(
        (&app["sleep_after"], &app["routing"]),
        (&json!("2m"), &json!("random")),
        "{app}"
    );
    // null is no change; off turns it off.
    let (status, _, app) = patch(json!({"sleep_after": null, "routing": "random"})).await;
    assert_eq!((status, &app["sleep_after"]), (200, &json!("2m")), "{app}");
    let (status, _, app) = patch(json!({"sleep_after": "off"})).await;
    assert_eq!((status, &app["sleep_after"]), (200, &json!("off")), "{app}");
    p.stop().await;
}
