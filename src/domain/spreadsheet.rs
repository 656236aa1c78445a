//! Text bound for a CSV file that editors open in a spreadsheet.
//!
//! Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a
//! formula, and readers choose their names and comments: a comment of
//! `=HYPERLINK(…)` or `=cmd|…` would act on the editor's machine. As OWASP
//! recommends, such a cell gets a leading `'`, which spreadsheets read as
//! "this is text" and do not show; the CSV writer quotes the rest.

use std::borrow::Cow;

/// Characters that make a spreadsheet read a cell as a formula, including
/// the tab and carriage return some of them skip before looking, and the
/// full-width forms some of them fold to the ASCII ones.
const FORMULA_STARTS: &[char] = &[
    '=', '+', '-', '@', '\t', '\r', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}',
];

/// `cell` as a spreadsheet will show it as text.
pub fn spreadsheet_text(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_become_text_and_the_rest_is_untouched() {
        for formula in ["=1+1", "+1", "-2", "@SUM(A1)", "\t=1", "\r=1", "＝1"] {
            assert_eq!(spreadsheet_text(formula), format!("'{formula}"));
        }
        for text in ["Ana", "a=b", "", "'quoted", "1-2"] {
            assert_eq!(spreadsheet_text(text), text);
        }
    }
}
