//! Placeholder until the report module lands.
pub fn register_templates(_tera: &mut tera::Tera) -> tera::Result<()> {
    Ok(())
}
