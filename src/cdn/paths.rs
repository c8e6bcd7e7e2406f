//! Which URL paths a CDN holds a cache entry under (see the module doc of [`crate::cdn`]).

pub use crate::config::RscVariants;
use crate::keys::IndexRow;

/// Whether the tag index rows name a pages-router page (whose purge names every build's
/// `/_next/data/` path, so the builds must be listed first).
pub fn rows_name_pages_router(rows: &[IndexRow]) -> bool {
    rows.iter().any(|r| PageKind::of(&r.key, None, PageKind::App) == PageKind::Pages)
}

/// The URL paths a CDN holds for the pages of `rows` (the tag index rows of `tags`), and for the
/// pages the tags name themselves (`_N_T_/blog/a`, from `revalidatePath`), with their variants;
/// sorted, unique.
pub fn paths_of_rows(tags: &[String], rows: Vec<IndexRow>, builds: &[String], rsc: RscVariants) -> Vec<String> {
    let mut pages: Vec<(String, PageKind)> = rows
        .into_iter()
        .filter_map(|r| {
            let kind = PageKind::of(&r.key, None, PageKind::App);
            r.path.map(|p| (p, kind))
        })
        .collect();
    pages.extend(tags.iter().filter_map(|t| path_of_implicit_tag(t)).map(|p| (p, PageKind::App)));
    let mut out: Vec<String> = pages.iter().flat_map(|(p, k)| page_paths(p, *k, builds, rsc)).collect();
    out.sort();
    out.dedup();
    out
}

/// What kind of response a cache key holds, for the URLs a CDN may hold it under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    /// An app-router page: its path and its RSC requests.
    App,
    /// A pages-router page: its path and its `/_next/data/` JSON per build.
    Pages,
    /// A route handler (or anything else with a path): the path alone.
    Route,
}

impl PageKind {
    /// From the key (`/route-cache/<KIND>/…` since Next 16.3.8 / 15.5.27), else the stored
    /// value's kind, else `default`.
    pub fn of(key: &str, value: Option<&crate::entry::Value>, default: PageKind) -> PageKind {
        use crate::entry::Value;
        if let Some(rest) = key.strip_prefix("/route-cache/") {
            match rest.split('/').next() {
                Some("APP_PAGE") => return PageKind::App,
                Some("PAGES") => return PageKind::Pages,
                Some("APP_ROUTE") => return PageKind::Route,
                _ => {}
            }
        }
        match value {
            Some(Value::AppPage { .. }) => PageKind::App,
            Some(Value::Pages { .. } | Value::Redirect { .. }) => PageKind::Pages,
            Some(Value::AppRoute { .. }) => PageKind::Route,
            _ => default,
        }
    }
}

/// A path as an invalidation names it: bytes outside printable ASCII, spaces and the characters
/// URLs escape (`"`, `#`, `<`, `>`, `` ` ``, `{`, `|`, `}`, `\`, `^`, `?`, `*`) percent-encoded; a `%`
/// already followed by two hex digits is kept (the path was encoded already).
pub fn url_path(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    for (i, &c) in b.iter().enumerate() {
        let escaped = c == b'%' && b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
        if escaped || (c.is_ascii_graphic() && !b"\"#<>`{|}\\^?*%".contains(&c)) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// The URL paths a CDN may hold `path` under (see the module doc), encoded for an invalidation.
pub fn page_paths(path: &str, kind: PageKind, builds: &[String], rsc: RscVariants) -> Vec<String> {
    let path = url_path(path);
    let path = path.as_str();
    let mut out = vec![path.to_string()];
    match kind {
        PageKind::App if rsc == RscVariants::Query => out.push(format!("{path}?_rsc=*")),
        PageKind::Pages => {
            let page = if path == "/" { path } else { path.trim_end_matches('/') };
            out.extend(builds.iter().map(|b| crate::keys::data_route(page, b)));
        }
        _ => {}
    }
    out
}

/// The page a path-derived tag names: `_N_T_/blog/a` (what `revalidatePath("/blog/a")` sends)
/// → `/blog/a`. A layout or page tag (`_N_T_/blog/layout`) names no single path: the tag index
/// lists the pages carrying it.
pub fn path_of_implicit_tag(tag: &str) -> Option<String> {
    let p = tag.strip_prefix("_N_T_")?;
    if !p.starts_with('/') || p.ends_with("/layout") || p.ends_with("/page") || p == "/layout" {
        return None;
    }
    Some(if p == "/index" { "/".to_string() } else { p.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_paths_a_page_brings() {
        assert_eq!(page_paths("/blog/a", PageKind::App, &[], RscVariants::Query), vec!["/blog/a", "/blog/a?_rsc=*"]);
        assert_eq!(page_paths("/blog/a", PageKind::App, &[], RscVariants::Headers), vec!["/blog/a"]);
        assert_eq!(
            page_paths("/", PageKind::Pages, &["B1".into(), "B2".into()], RscVariants::Query),
            vec!["/", "/_next/data/B1/index.json", "/_next/data/B2/index.json"]
        );
        assert_eq!(page_paths("/api/x", PageKind::Route, &["B1".into()], RscVariants::Query), vec!["/api/x"]);
        // Encoded as CloudFront wants them; an encoded path stays as it is.
        assert_eq!(url_path("/café/a b"), "/caf%C3%A9/a%20b");
        assert_eq!(url_path("/caf%C3%A9"), "/caf%C3%A9");
        assert_eq!(url_path("/100%/x*?"), "/100%25/x%2A%3F");
        assert_eq!(page_paths("/ü", PageKind::App, &[], RscVariants::Query), vec!["/%C3%BC", "/%C3%BC?_rsc=*"]);
        assert_eq!(PageKind::of("/route-cache/PAGES/1a/$/p", None, PageKind::App), PageKind::Pages);
        assert_eq!(PageKind::of("/route-cache/APP_ROUTE/1a/$/api", None, PageKind::App), PageKind::Route);
        assert_eq!(PageKind::of("/p", None, PageKind::App), PageKind::App);
        assert_eq!(path_of_implicit_tag("_N_T_/blog/a").as_deref(), Some("/blog/a"));
        assert_eq!(path_of_implicit_tag("_N_T_/index").as_deref(), Some("/"));
        assert_eq!(path_of_implicit_tag("_N_T_/blog/layout"), None);
        assert_eq!(path_of_implicit_tag("_N_T_/layout"), None);
        assert_eq!(path_of_implicit_tag("_N_T_/blog/a/page"), None);
        assert_eq!(path_of_implicit_tag("posts"), None);
    }
}
