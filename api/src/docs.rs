//! The `/docs` page: Swagger UI, every asset compiled into the binary, so the page works
//! with no internet access.
//!
//! The assets come from `utoipa-swagger-ui` (vendored Swagger UI, embedded at build time).
//! The page itself (`api/static/docs.html`) and its start script are ours: they use absolute
//! `/docs/...` asset paths, so the page is served at `/docs` itself rather than behind a
//! redirect to `/docs/`, and they point Swagger UI at `/openapi.json`.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

const PAGE: &str = include_str!("../static/docs.html");
const INIT_JS: &str = include_str!("../static/init.js");

/// The asset at `/docs/{tail}` (`""` is the page): its bytes and content type.
pub fn asset(tail: &str) -> Option<(Bytes, String)> {
    match tail {
        "" | "index.html" => Some((
            Bytes::from_static(PAGE.as_bytes()),
            "text/html; charset=utf-8".into(),
        )),
        "init.js" => Some((
            Bytes::from_static(INIT_JS.as_bytes()),
            "text/javascript; charset=utf-8".into(),
        )),
        // Their index.html and initializer would point elsewhere; ours replace them.
        "swagger-initializer.js" => None,
        _ => swagger_ui_file(tail),
    }
}

fn swagger_ui_file(tail: &str) -> Option<(Bytes, String)> {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    let config = CONFIG
        .get_or_init(|| Arc::new(utoipa_swagger_ui::Config::new(["/openapi.json"])))
        .clone();
    match utoipa_swagger_ui::serve(tail, config) {
        Ok(Some(file)) => Some((Bytes::from(file.bytes.into_owned()), file.content_type)),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, asset = tail, "cannot serve a Swagger UI asset");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_scripts_are_embedded() {
        let (page, kind) = asset("").unwrap();
        assert!(kind.starts_with("text/html"));
        for script in [
            "/docs/swagger-ui-bundle.js",
            "/docs/init.js",
            "/docs/swagger-ui.css",
        ] {
            assert!(std::str::from_utf8(&page).unwrap().contains(script));
            let name = script.trim_start_matches("/docs/");
            let (bytes, _) = asset(name).unwrap_or_else(|| panic!("{name} is not embedded"));
            assert!(!bytes.is_empty());
        }
        assert!(asset("index.css").is_some());
    }

    #[test]
    fn unknown_assets_are_none() {
        assert!(asset("nope.js").is_none());
        assert!(asset("../Cargo.toml").is_none());
    }
}
