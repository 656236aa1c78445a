//! What makes the templates the publication's own: its language and its
//! brand, offered to every template as Tera functions so that the handlers
//! and the mail composer need not pass them around.
//!
//! - `t(key="message-id", name=…)`: a message of the catalogue;
//! - `brand()`: `lang`, `accent`, `logo_url`, `footer`, `postal_address`;
//! - `| long_date`: a `YYYY-MM-DD` date written out in the language;
//! - `| label`: a label with the language's colon ("Source: ", "来源：").

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use tera::Tera;

use crate::config::BrandSettings;
use crate::i18n::{tera_function, tera_label, tera_long_date, Catalogue};

/// The language and brand a template set is built with.
pub struct Look {
    catalogue: Arc<Catalogue>,
    brand: tera::Value,
}

impl Look {
    pub fn new(catalogue: Arc<Catalogue>, brand: BrandSettings) -> Look {
        let brand = json!({
            "lang": catalogue.language(),
            "accent": brand.accent_color,
            "logo_url": brand.logo_url.map(|u| u.to_string()),
            "footer": brand.footer,
            "postal_address": brand.postal_address,
        });
        Look { catalogue, brand }
    }

    /// Adds `t`, `brand` and `long_date` to `tera`.
    pub fn register(&self, tera: &mut Tera) {
        tera.register_function("t", tera_function(self.catalogue.clone()));
        tera.register_filter("long_date", tera_long_date(self.catalogue.clone()));
        tera.register_filter("label", tera_label(self.catalogue.clone()));
        let brand = self.brand.clone();
        tera.register_function("brand", move |_: &HashMap<String, tera::Value>| {
            Ok(brand.clone())
        });
    }
}
