//! `GET /openapi.json`: the document covers every JSON route, each of its
//! references resolves, each route it names exists and answers as it says,
//! and a method an address does not take gets 405 naming those it does.
//! (`.ci/api-contract` runs schemathesis against the same document.)

mod common;

use serde_json::Value;

use common::{ADMIN_TOKEN, Backend, TestApp};

on_both_backends!(the_document_describes_every_json_route, methods_an_address_lacks_get_405);

/// The routes a script or an integration calls; the HTML pages are not in
/// the document.
const JSON_ROUTES: &[(&str, &str)] = &[
    ("post", "/subscriptions"),
    ("get", "/subscriptions/form-token"),
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/preferences/{token}/export"),
    ("get", "/admin/lists"),
    ("get", "/admin/posts"),
    ("post", "/admin/posts"),
    ("post", "/admin/posts/pull"),
    ("get", "/admin/digests"),
    ("post", "/admin/digests"),
    ("get", "/admin/digests/preview"),
    ("get", "/admin/digests/{id}"),
    ("post", "/admin/digests/{id}/pause"),
    ("post", "/admin/digests/{id}/resume"),
    ("post", "/admin/digests/{id}/cancel"),
    ("get", "/admin/suppressions"),
    ("post", "/admin/suppressions"),
    ("delete", "/admin/suppressions/{email}"),
    ("post", "/admin/subscribers/import"),
    ("get", "/admin/subscribers/export.csv"),
    ("delete", "/admin/subscribers/{email}"),
    ("post", "/webhooks/bounces"),
];

fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                found.push(r.clone());
            }
            map.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

async fn the_document_describes_every_json_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    // Exactly the JSON routes, each with its methods.
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.clone(), path.clone())))
        .collect();
    documented.sort();
    let mut expected: Vec<(String, String)> =
        JSON_ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    expected.sort();
    assert_eq!(documented, expected);

    // Every reference points into the document's components.
    let mut refs = Vec::new();
    references(&doc, &mut refs);
    assert!(refs.len() > 20, "{refs:?}");
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "unresolved {r}");
    }
    // The configured lists, named where a list's slug goes.
    let slugs = &doc["components"]["schemas"]["ListSlug"]["enum"];
    let lists: Value = app.admin_get("/admin/lists").await.json().await.unwrap();
    let configured: Vec<&str> = lists.as_array().unwrap().iter().map(|l| l["slug"].as_str().unwrap()).collect();
    assert_eq!(configured.len(), 2);
    assert_eq!(slugs, &serde_json::json!(configured));
    assert!(doc["components"]["securitySchemes"]["admin_token"].is_object());
    // Links as the specification spells them, naming operations that exist.
    let links = &doc["paths"]["/admin/digests"]["post"]["responses"]["202"]["links"];
    let ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values().filter_map(|op| op["operationId"].as_str()))
        .collect();
    for name in ["status", "pause", "resume", "cancel"] {
        let target = links[name]["operationId"].as_str().unwrap_or_else(|| panic!("{name}: {links}"));
        assert!(ids.contains(&target), "{target} is no operation");
        assert_eq!(links[name]["parameters"]["id"], "$response.body#/id");
    }

    // Each route exists and answers with a status the document lists for it.
    for (method, path) in JSON_ROUTES {
        let concrete = path.replace("{id}", "1").replace("{email}", "nobody@example.com").replace("{token}", "t");
        let method: reqwest::Method = method.to_uppercase().parse().unwrap();
        let res = app
            .client
            .request(method.clone(), app.url(&concrete))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16().to_string();
        let body = res.text().await.unwrap();
        assert!(!body.contains("no such page or API route"), "{method} {path} is not routed");
        let answers = &doc["paths"][path][method.as_str().to_lowercase()]["responses"];
        assert!(answers[&status].is_object(), "{method} {path} answered {status}, not in {answers}: {body}");
    }
}

async fn methods_an_address_lacks_get_405(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (method, path, allow) in [
        ("PATCH", "/admin/lists", "GET, HEAD"),
        ("PUT", "/admin/posts", "GET, HEAD, POST"),
        ("DELETE", "/health", "GET, HEAD"),
        ("GET", "/webhooks/bounces", "POST"),
        ("PUT", "/unsubscribe/abc", "GET, HEAD, POST"),
    ] {
        let res =
            app.client.request(method.parse().unwrap(), app.url(path)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(res.status(), 405, "{method} {path}");
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
        let body: Value = res.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains(allow), "{body}");
    }
    // A query the extractor cannot read names the field, as JSON.
    let res = app.admin_get("/admin/suppressions?limit=many").await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["field"], "limit", "{body}");
    let res = app
        .client
        .post(app.url("/admin/subscribers/import?list=orthopedic&dry_run=perhaps"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "text/csv")
        .body("email\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["field"], "dry_run", "{body}");
}
