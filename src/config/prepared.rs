//! The prepared form of a validated routes file: what the build embeds and an
//! isolate starts from.
//!
//! An isolate needs, at start-up, the file's top level and, for each route, only
//! what the route table files it by: its host, its methods and its canonical
//! path. The rest of a route (its policies) is needed only when a request first
//! matches it. So the build writes the top level as JSON, and each route as a
//! line of byte lengths followed by its host, its canonical path and its own
//! JSON; an isolate reads the lengths, slices the text and parses a route's
//! JSON the first time it is matched. With 10,000 routes that keeps start-up to
//! the top level and the table's index, whatever the routes hold.
//!
//! ```text
//! gateway-prepared 1\n
//! <top-level JSON, with "routes": []>\n
//! <methods mask> <host bytes> <canonical path bytes> <route JSON bytes>\n   (one per route)
//! <host><canonical path><route JSON>\n
//! ```
//!
//! The lengths make the form independent of what a path or host may contain.
//! Only the build writes it, from a file it has validated; [`read`] still checks
//! every length against the text and refuses a form that does not add up.

use serde_json::Value;

use super::path::parse_path;
use super::RoutesFile;

/// The first line of the form; a different one is refused.
const MAGIC: &str = "gateway-prepared 1\n";

/// One route of the prepared form, borrowed from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreparedRoute<'t> {
    /// The route's `host`, as written in the file; `None` for any host.
    pub host: Option<&'t str>,
    /// The methods it answers, one bit per `Method::index`.
    pub methods: u8,
    /// Its path in matchit's form (`parse_path`'s `canonical`).
    pub canonical: &'t str,
    /// The route's own JSON object.
    pub json: &'t str,
}

/// The prepared form, read.
#[derive(Debug)]
pub struct Prepared<'t> {
    /// The file's top level as JSON, with no routes.
    pub head: &'t str,
    pub routes: Vec<PreparedRoute<'t>>,
}

/// Writes the prepared form of `text`, a file `file` is the validated parse of
/// (with its schemas inlined: `schema::embedded_text`).
pub fn write(text: &str, file: &RoutesFile) -> Result<String, String> {
    let mut value: Value =
        serde_json::from_str(text).map_err(|e| format!("the routes file does not parse: {e}"))?;
    let routes = match value.get_mut("routes") {
        Some(Value::Array(list)) => std::mem::take(list),
        _ => Vec::new(),
    };
    if routes.len() != file.routes.len() {
        return Err("the routes file and its parse disagree on the routes".into());
    }
    let head = value.to_string();
    let mut out = String::with_capacity(text.len() + 64 * routes.len() + MAGIC.len());
    out.push_str(MAGIC);
    out.push_str(&head);
    out.push('\n');
    for (json, route) in routes.iter().zip(&file.routes) {
        let canonical = parse_path(&route.path)
            .map_err(|e| format!("route \"{}\": path {e}", route.id))?
            .canonical;
        let host = route.host.as_deref().unwrap_or("");
        let json = json.to_string();
        let methods = crate::route::route_method_mask(route);
        out.push_str(&format!(
            "{methods} {} {} {}\n",
            host.len(),
            canonical.len(),
            json.len()
        ));
        out.push_str(host);
        out.push_str(&canonical);
        out.push_str(&json);
        out.push('\n');
    }
    Ok(out)
}

/// Reads a prepared form: no JSON is parsed here.
pub fn read(text: &str) -> Result<Prepared<'_>, String> {
    let bad = |what: &str| format!("the prepared routes file is damaged: {what}");
    let rest = text
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("it does not start with its version line"))?;
    let (head, mut rest) = rest
        .split_once('\n')
        .ok_or_else(|| bad("the top level does not end"))?;
    let mut routes = Vec::new();
    while !rest.is_empty() {
        let (line, after) = rest
            .split_once('\n')
            .ok_or_else(|| bad("a route's lengths do not end"))?;
        let mut fields = line.split(' ');
        let mut number = || -> Result<usize, String> {
            fields
                .next()
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| bad("a route's lengths are not numbers"))
        };
        let methods = u8::try_from(number()?).map_err(|_| bad("a methods mask"))?;
        let (host_len, path_len, json_len) = (number()?, number()?, number()?);
        if fields.next().is_some() {
            return Err(bad("a route has more lengths than four"));
        }
        let path_end = host_len
            .checked_add(path_len)
            .ok_or_else(|| bad("a length overflows"))?;
        let json_end = path_end
            .checked_add(json_len)
            .ok_or_else(|| bad("a length overflows"))?;
        let slice = |from: usize, to: usize| {
            after
                .get(from..to)
                .ok_or_else(|| bad("a length runs past the text"))
        };
        let host = slice(0, host_len)?;
        let canonical = slice(host_len, path_end)?;
        let json = slice(path_end, json_end)?;
        rest = after
            .get(json_end..)
            .and_then(|r| r.strip_prefix('\n'))
            .ok_or_else(|| bad("a route does not end with a new line"))?;
        routes.push(PreparedRoute {
            host: (!host.is_empty()).then_some(host),
            methods,
            canonical,
            json,
        });
    }
    Ok(Prepared { head, routes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    const FILE: &str = r#"{"origins": {"o": {"regions": [{"name": "r", "url": "http://h"}]}},
        "cors": {"origins": ["https://app.example"]},
        "routes": [
          {"id": "any", "path": "/a/{id}", "origin": "o"},
          {"id": "tab", "path": "/t\tb\nc/ü", "origin": "o", "methods": ["GET", "POST"], "host": "API.example.com"},
          {"id": "ws", "path": "/ws", "origin": "o", "websocket": true, "host": "*.example.com"}
        ]}"#;

    #[test]
    fn every_route_reads_back_with_its_table_entry() {
        let file = load(FILE).unwrap();
        let text = write(FILE, &file).unwrap();
        let read = read(&text).unwrap();
        let head: RoutesFile = serde_json::from_str(read.head).unwrap();
        assert!(head.routes.is_empty());
        assert_eq!(head.cors.unwrap().origins, ["https://app.example"]);
        assert_eq!(read.routes.len(), 3);
        for (r, route) in read.routes.iter().zip(&file.routes) {
            assert_eq!(r.host, route.host.as_deref());
            assert_eq!(r.methods, crate::route::route_method_mask(route));
            assert_eq!(r.canonical, parse_path(&route.path).unwrap().canonical);
            let back: crate::config::Route = serde_json::from_str(r.json).unwrap();
            assert_eq!(
                serde_json::to_value(&back).unwrap(),
                serde_json::to_value(route).unwrap()
            );
        }
        // A path may hold what separates the form's fields: the lengths decide.
        assert_eq!(read.routes[1].canonical, "/t\tb\nc/ü");
    }

    #[test]
    fn a_damaged_form_is_refused_not_misread() {
        let file = load(FILE).unwrap();
        let text = write(FILE, &file).unwrap();
        let damaged = [
            text.replacen("gateway-prepared 1", "gateway-prepared 2", 1),
            text[..text.len() - 1].to_string(),
            text[..text.len() / 2].to_string(),
            text.replacen("\n127 0 7 42\n", "\n127 0 x 42\n", 1),
            text.replacen("\n127 0 7 42\n", "\n127 0 7 99999\n", 1),
            text.replacen("\n127 0 7 42\n", "\n999 0 7 42\n", 1),
            text.replacen("\n127 0 7 42\n", "\n127 0 7 42 0\n", 1),
            text.replacen("\n127 0 7 42\n", "\n127 0 7\n", 1),
            text.replacen("\n127 0 7 42\n", "\n127 0 7 41\n", 1),
            // A length that ends inside the two bytes of "ü".
            text.replacen("\n7 15 9 96\n", "\n7 15 8 97\n", 1),
            format!("{text}x"),
        ];
        for d in &damaged {
            assert_ne!(d, &text);
            assert!(read(d).is_err(), "{d:?}");
        }
        assert!(read("").is_err());
        assert_eq!(read(&format!("{MAGIC}{{}}\n")).unwrap().routes, []);
    }
}
