//! Any text given to the report parser is either a report or an error that
//! names a line inside the input; it never panics. A report that parses
//! also renders.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use newsletter::report::{render_report, Report, SendContext};

fn tera() -> &'static tera::Tera {
    static TERA: OnceLock<tera::Tera> = OnceLock::new();
    TERA.get_or_init(|| newsletter::render::templates().expect("the templates load"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    match Report::parse(source) {
        Ok(report) => {
            let context = SendContext {
                base_url: "https://news.example.com",
                site_name: "Fuzz",
                archive_url: "https://news.example.com/archive/x".into(),
            };
            let _ = render_report(tera(), &report, &context);
        }
        Err(e) => {
            let lines = source.lines().count().max(1);
            if let Some(line) = e.line {
                assert!(line >= 1 && line <= lines + 1, "line {line} of {lines}: {e}");
            }
        }
    }
});
