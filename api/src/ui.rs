//! The dashboard under `/ui`: a hash-routed single page (fleet, one GPU, pipeline health) in
//! plain HTML/JS/CSS over the REST API, every asset compiled into the binary so that the page
//! works with no internet access (no CDN, no web fonts).
//!
//! The sources are in `api/ui/`: `index.html`, `app.js`, `app.css`, and the one library, uPlot,
//! vendored from npm in `api/ui/vendor/` (its README says which version and how to update it).
//! The page refers to its assets by absolute `/ui/...` paths, so it works at `/ui` and `/ui/`.

use bytes::Bytes;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Every asset: its path under `/ui/`, its bytes and its content type.
const ASSETS: &[(&str, &[u8], &str)] = &[
    ("index.html", include_bytes!("../ui/index.html"), HTML),
    ("app.js", include_bytes!("../ui/app.js"), JS),
    ("app.css", include_bytes!("../ui/app.css"), CSS),
    (
        "vendor/uPlot.iife.min.js",
        include_bytes!("../ui/vendor/uPlot.iife.min.js"),
        JS,
    ),
    (
        "vendor/uPlot.min.css",
        include_bytes!("../ui/vendor/uPlot.min.css"),
        CSS,
    ),
    (
        "vendor/uPlot.LICENSE",
        include_bytes!("../ui/vendor/uPlot.LICENSE"),
        TEXT,
    ),
];

/// The asset at `tail` (`""` is the page) and its content type.
pub fn asset(tail: &str) -> Option<(Bytes, &'static str)> {
    let name = if tail.is_empty() { "index.html" } else { tail };
    ASSETS
        .iter()
        .find(|(path, _, _)| *path == name)
        .map(|(_, bytes, content_type)| (Bytes::from_static(bytes), *content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(tail: &str) -> String {
        let (bytes, _) = asset(tail).unwrap_or_else(|| panic!("{tail:?} is not embedded"));
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    #[test]
    fn the_page_is_served_at_the_root_and_as_index_html() {
        let (page, kind) = asset("").unwrap();
        assert_eq!(kind, HTML);
        assert_eq!(page, asset("index.html").unwrap().0);
    }

    #[test]
    fn every_asset_the_page_refers_to_is_embedded_with_its_type() {
        let page = text("");
        let mut referenced = 0;
        for attr in ["src=\"", "href=\""] {
            for rest in page.split(attr).skip(1) {
                let target = &rest[..rest.find('"').expect("closing quote")];
                let Some(tail) = target.strip_prefix("/ui/") else {
                    continue;
                };
                let (bytes, kind) =
                    asset(tail).unwrap_or_else(|| panic!("{target} is not embedded"));
                assert!(!bytes.is_empty(), "{target} is empty");
                let want = if tail.ends_with(".js") { JS } else { CSS };
                assert_eq!(kind, want, "{target}");
                referenced += 1;
            }
        }
        assert_eq!(referenced, 4, "uPlot's script and styles, ours");
    }

    #[test]
    fn our_assets_load_nothing_from_elsewhere() {
        for tail in ["", "app.js", "app.css", "vendor/uPlot.min.css"] {
            let body = text(tail);
            for scheme in ["http://", "https://", "//fonts.", "@import"] {
                assert!(!body.contains(scheme), "{tail:?} mentions {scheme}");
            }
        }
        // uPlot's script names its home page in its banner comment, and nowhere else.
        let uplot = text("vendor/uPlot.iife.min.js");
        assert_eq!(uplot.matches("http").count(), 1);
        assert!(uplot.starts_with("/*! https://github.com/leeoniya/uPlot"));
    }

    #[test]
    fn unknown_assets_are_none() {
        for tail in [
            "nope.js",
            "../Cargo.toml",
            "vendor/",
            "vendor",
            "/app.js",
            "APP.JS",
        ] {
            assert!(asset(tail).is_none(), "{tail}");
        }
    }
}
