//! The page `GET /__gateway/docs` serves: one self-contained HTML document of
//! the routes file, generated at build time (build.rs compiles this module).
//!
//! It lists every route with its methods, host, path, auth, rate limit, cache
//! and CORS rules, and the token issuers by name and issuer. It never shows
//! origin URLs, keys, secrets or secret names: origins appear by name only.
//! Inline CSS, no script, no request to any other host.

use std::fmt::Write;

use crate::config::{BodySchema, KeyKind, Method, Route, RoutesFile};

/// HTML-escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
:root{color-scheme:light dark;--fg:#1d2430;--muted:#5b6575;--bg:#fff;--line:#dde2ea;--chip:#eef2f8;--accent:#1f5fbf}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ef;--muted:#9aa4b5;--bg:#12151b;--line:#2a303b;--chip:#1e2430;--accent:#7fb0ff}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:72rem;margin:0 auto;padding:2rem 1.25rem 4rem}
h1{font-size:1.6rem;margin:0 0 .25rem}
h2{font-size:1.15rem;margin:2.25rem 0 .75rem;padding-bottom:.35rem;border-bottom:1px solid var(--line)}
p.lead{color:var(--muted);margin:0 0 1rem}
a{color:var(--accent)}
table{width:100%;border-collapse:collapse;font-size:.92rem}
th,td{text-align:left;vertical-align:top;padding:.5rem .6rem;border-bottom:1px solid var(--line)}
th{font-weight:600;color:var(--muted);font-size:.8rem;text-transform:uppercase;letter-spacing:.03em}
code{font:.88em/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
td:first-child code{white-space:nowrap}
.m{display:inline-block;font:600 .72rem/1 ui-monospace,monospace;padding:.25rem .4rem;margin:0 .2rem .2rem 0;border-radius:.3rem;background:var(--chip)}
.GET,.HEAD{color:#137333}.POST{color:#9a5b00}.PUT,.PATCH{color:#1f5fbf}.DELETE{color:#b3261e}.OPTIONS{color:var(--muted)}
@media (prefers-color-scheme:dark){.GET,.HEAD{color:#7fd99a}.POST{color:#f3b562}.PUT,.PATCH{color:#7fb0ff}.DELETE{color:#ff8a80}}
.none{color:var(--muted)}
.wrap{overflow-x:auto}
footer{margin-top:3rem;color:var(--muted);font-size:.85rem}
";

fn methods_cell(route: &Route) -> String {
    let list: Vec<Method> = match &route.methods {
        None => return "<span class=\"m\">ANY</span>".into(),
        Some(ms) => {
            let mut ms = ms.clone();
            ms.sort();
            ms.dedup();
            ms
        }
    };
    let mut out = String::new();
    for m in list {
        let _ = write!(out, "<span class=\"m {0}\">{0}</span>", m.as_str());
    }
    if route
        .methods
        .as_ref()
        .is_some_and(|ms| ms.contains(&Method::Get) && !ms.contains(&Method::Head))
    {
        out.push_str("<span class=\"m HEAD\" title=\"GET implies HEAD\">HEAD</span>");
    }
    out
}

fn none() -> String {
    "<span class=\"none\">—</span>".into()
}

fn auth_cell(route: &Route) -> String {
    match &route.auth {
        None => none(),
        Some(spec) => {
            let cells: Vec<String> = spec
                .alternatives()
                .iter()
                .map(|a| {
                    let mut s = String::new();
                    if let Some(jwt) = &a.jwt {
                        let _ = write!(s, "bearer token from <code>{}</code>", escape(jwt));
                    }
                    if !a.scopes.is_empty() {
                        let scopes: Vec<String> = a
                            .scopes
                            .iter()
                            .map(|s| format!("<code>{}</code>", escape(s)))
                            .collect();
                        let _ = write!(s, "<br>scopes: {}", scopes.join(" "));
                    }
                    if let Some(k) = &a.api_key {
                        s.push_str("API key");
                        if !k.plans.is_empty() {
                            let plans: Vec<String> = k
                                .plans
                                .iter()
                                .map(|p| format!("<code>{}</code>", escape(p)))
                                .collect();
                            let _ = write!(s, "<br>plans: {}", plans.join(" "));
                        }
                    }
                    s
                })
                .collect();
            cells.join("<br>or ")
        }
    }
}

fn limit_cell(route: &Route) -> String {
    match &route.rate_limit {
        None => none(),
        Some(rl) => {
            let per = match &rl.key {
                KeyKind::Ip => "per client address".to_string(),
                KeyKind::Sub => "per token subject".to_string(),
                KeyKind::Consumer => "per consumer".to_string(),
                KeyKind::Route => "for all callers together".to_string(),
                KeyKind::Header(h) => format!("per <code>{}</code> header", escape(h)),
            };
            format!(
                "{} request{} per {} s<br>{per}",
                rl.requests,
                if rl.requests == 1 { "" } else { "s" },
                rl.window_s
            )
        }
    }
}

fn cache_cell(route: &Route) -> String {
    match &route.cache {
        None => none(),
        Some(c) => {
            let mut s = format!("{} s at the edge", c.ttl_s);
            if !c.vary.is_empty() {
                let vary: Vec<String> = c
                    .vary
                    .iter()
                    .map(|h| format!("<code>{}</code>", escape(h)))
                    .collect();
                let _ = write!(s, "<br>varies on {}", vary.join(" "));
            }
            if route.auth.is_some() {
                s.push_str("<br>per caller (token subject or consumer)");
            }
            s
        }
    }
}

fn validation_cell(file: &RoutesFile, route: &Route) -> String {
    let Some(rule) = route.validate.as_ref().or(file.validate.as_ref()) else {
        return none();
    };
    let mut parts = Vec::new();
    match &rule.body {
        Some(BodySchema::Inline(schema)) => {
            let title = schema
                .get("title")
                .and_then(|t| t.as_str())
                .map(|t| format!(" <q>{}</q>", escape(t)))
                .unwrap_or_default();
            let text = serde_json::to_string_pretty(schema).unwrap_or_default();
            parts.push(format!(
                "JSON body{title}<details><summary>schema</summary><pre>{}</pre></details>",
                escape(&text)
            ));
        }
        Some(BodySchema::Path(p)) => {
            parts.push(format!("JSON body: <code>{}</code>", escape(p)));
        }
        None => {}
    }
    if rule.body.is_some() {
        let max = route
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(1024 * 1024);
        parts.push(format!("at most {max} bytes"));
    }
    for (name, q) in &rule.query {
        let mut s = format!("<code>?{}</code> {}", escape(name), q.kind.as_str());
        if q.required {
            s.push_str(", required");
        }
        if let Some(p) = &q.pattern {
            let _ = write!(s, ", matching <code>{}</code>", escape(p));
        }
        parts.push(s);
    }
    if parts.is_empty() {
        none()
    } else {
        parts.join("<br>")
    }
}

fn cors_cell(file: &RoutesFile, route: &Route) -> String {
    match route.cors.as_ref().or(file.cors.as_ref()) {
        None => none(),
        Some(c) => {
            let origins: Vec<String> = c
                .origins
                .iter()
                .map(|o| format!("<code>{}</code>", escape(o)))
                .collect();
            origins.join(" ")
        }
    }
}

/// The whole page. `openapi_href` is where the OpenAPI document is served.
pub fn page(file: &RoutesFile, title: &str, version: &str, openapi_href: &str) -> String {
    let mut h = String::with_capacity(4096 + file.routes.len() * 600);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <link rel=\"icon\" href=\"data:,\">\n<title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <h1>{t}</h1>\n<p class=\"lead\">{n} route{s} · version <code>{v}</code> · \
         <a href=\"{o}\">OpenAPI 3.1 document</a></p>\n",
        t = escape(title),
        n = file.routes.len(),
        s = if file.routes.len() == 1 { "" } else { "s" },
        v = escape(version),
        o = escape(openapi_href),
    );
    h.push_str(
        "<h2 id=\"routes\">Routes</h2>\n<div class=\"wrap\"><table>\n<thead><tr>\
         <th>Route</th><th>Methods</th><th>Path</th><th>Auth</th><th>Rate limit</th>\
         <th>Cache</th><th>Validation</th><th>CORS</th></tr></thead>\n<tbody>\n",
    );
    for r in &file.routes {
        let host = match &r.host {
            Some(host) => format!(
                "<br><span class=\"none\">host</span> <code>{}</code>",
                escape(host)
            ),
            None => String::new(),
        };
        let _ = writeln!(
            h,
            "<tr id=\"route-{id}\" data-route=\"{id}\"><td><code>{id}</code><br>\
             <span class=\"none\">origin</span> <code>{origin}</code></td><td>{methods}</td>\
             <td><code>{path}</code>{host}</td><td>{auth}</td><td>{limit}</td><td>{cache}</td>\
             <td>{validation}</td><td>{cors}</td></tr>",
            id = escape(&r.id),
            origin = escape(&r.origin.to_string()),
            methods = methods_cell(r),
            path = escape(&r.path),
            auth = auth_cell(r),
            limit = limit_cell(r),
            cache = cache_cell(r),
            validation = validation_cell(file, r),
            cors = cors_cell(file, r),
        );
    }
    h.push_str("</tbody>\n</table></div>\n");
    if !file.jwt.is_empty() {
        h.push_str(
            "<h2 id=\"auth\">Token issuers</h2>\n<p class=\"lead\">Send <code>Authorization: Bearer TOKEN</code>. \
             A missing or invalid token gets 401, a missing scope 403.</p>\n<div class=\"wrap\"><table>\n\
             <thead><tr><th>Name</th><th>Issuer</th><th>Audiences</th></tr></thead>\n<tbody>\n",
        );
        for (name, p) in &file.jwt {
            let aud = match &p.audiences {
                Some(a) if !a.is_empty() => a
                    .iter()
                    .map(|x| format!("<code>{}</code>", escape(x)))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => none(),
            };
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{aud}</td></tr>",
                escape(name),
                escape(&p.issuer)
            );
        }
        h.push_str("</tbody>\n</table></div>\n");
    }
    h.push_str(
        "<h2 id=\"errors\">Errors</h2>\n<p>Errors the gateway answers itself are \
         <code>application/problem+json</code> (RFC 9457) with <code>type</code>, \
         <code>title</code>, <code>status</code> and the request id; every response \
         carries <code>x-request-id</code>. Over a rate limit: 429 with \
         <code>retry-after</code>. Paths under <code>/__gateway/</code> belong to the gateway.</p>\n",
    );
    h.push_str("<footer>Generated from the routes file when the gateway was built.</footer>\n</main>\n</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{
        "origins": {"users": {"regions": [{"name": "eu", "url": "https://secret-origin.internal.example.com"}]}},
        "jwt": {"main": {"issuer": "https://auth.example.com/", "secret_var": "HMAC_SECRET_NAME"}},
        "docs": true,
        "routes": [
          {"id": "get-user", "path": "/api/users/{id}", "methods": ["GET"], "origin": "users",
           "rewrite": "/internal/v1/users/{id}",
           "auth": {"jwt": "main", "scopes": ["users:read"]},
           "rate_limit": {"requests": 100, "window_s": 60, "key": "sub"},
           "cache": {"ttl_s": 30, "vary": ["accept-language"]}},
          {"id": "x<script>", "path": "/a/<b>", "origin": "users"}
        ]}"#;

    #[test]
    fn the_page_shows_validation_per_route() {
        let file = crate::config::load(
            r#"{"origins": {"o": {"regions": [{"name": "r", "url": "https://o.internal"}]}},
                "validate": {"query": {"trace": {"type": "boolean"}}},
                "routes": [
                  {"id": "create", "path": "/u", "methods": ["POST"], "origin": "o", "max_body_bytes": 500,
                   "validate": {"body": {"title": "A <user>", "type": "object"},
                                "query": {"ref": {"required": true, "pattern": "^a<"}}}},
                  {"id": "inherits", "path": "/v", "origin": "o"},
                  {"id": "off", "path": "/w", "origin": "o", "validate": {}}
                ]}"#,
        )
        .unwrap();
        let html = page(&file, "API", "1", "/o.json");
        let row = |id: &str| {
            let start = html.find(&format!("data-route=\"{id}\"")).unwrap();
            html[start..start + html[start..].find("</tr>").unwrap()].to_string()
        };
        let create = row("create");
        assert!(
            create.contains("JSON body <q>A &lt;user&gt;</q>"),
            "{create}"
        );
        assert!(
            create.contains("<details><summary>schema</summary><pre>{"),
            "{create}"
        );
        assert!(create.contains("at most 500 bytes"), "{create}");
        assert!(
            create.contains("<code>?ref</code> string, required, matching <code>^a&lt;</code>"),
            "{create}"
        );
        assert!(
            !create.contains("trace"),
            "a route's own rule replaces the top level's"
        );
        assert!(row("inherits").contains("<code>?trace</code> boolean"));
        assert!(!row("off").contains("trace"));
    }

    #[test]
    fn the_page_lists_routes_and_holds_no_secrets() {
        // Not valid ids or paths, but the page must escape whatever it shows.
        let mut file =
            crate::config::load(&FILE.replace("x<script>", "other").replace("/a/<b>", "/a/b"))
                .unwrap();
        file.routes[1].id = "x<script>".into();
        let html = page(&file, "Users API", "1.2.3", "/__gateway/openapi.json");
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<tr id=\"route-get-user\" data-route=\"get-user\">"));
        assert!(html.contains("<code>/api/users/{id}</code>"));
        assert!(html.contains("<span class=\"m GET\">GET</span>"));
        assert!(html.contains("scopes: <code>users:read</code>"));
        assert!(html.contains("100 requests per 60 s<br>per token subject"));
        assert!(html.contains("varies on <code>accept-language</code>"));
        assert!(html.contains("<a href=\"/__gateway/openapi.json\">"));
        assert!(html.contains("x&lt;script&gt;") && !html.contains("x<script>"));
        for secret in [
            "secret-origin",
            "HMAC_SECRET_NAME",
            "/internal/v1",
            "https://",
        ] {
            if secret == "https://" {
                // The issuer is public (it is in every token); no other URL is shown.
                assert_eq!(html.matches("https://").count(), 1, "{html}");
            } else {
                assert!(!html.contains(secret), "{secret} in the page");
            }
        }
        assert!(!html.contains("<script"), "no script");
        assert!(!html.contains("src="), "nothing loaded from elsewhere");
    }
}
