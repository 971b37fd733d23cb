//! India's states and union territories as GST names them (pricing decides
//! CGST + SGST or IGST by them, an invoice names its place of supply): the two-digit
//! state code that opens a GSTIN and names the place of supply, looked up
//! by the short code a buyer or the seller's settings use (`KA`), by the
//! name, or by the GST code itself.

/// (short code, GST state code, name).
const PLACES: &[(&str, &str, &str)] = &[
    ("JK", "01", "Jammu and Kashmir"),
    ("HP", "02", "Himachal Pradesh"),
    ("PB", "03", "Punjab"),
    ("CH", "04", "Chandigarh"),
    ("UK", "05", "Uttarakhand"),
    ("HR", "06", "Haryana"),
    ("DL", "07", "Delhi"),
    ("RJ", "08", "Rajasthan"),
    ("UP", "09", "Uttar Pradesh"),
    ("BR", "10", "Bihar"),
    ("SK", "11", "Sikkim"),
    ("AR", "12", "Arunachal Pradesh"),
    ("NL", "13", "Nagaland"),
    ("MN", "14", "Manipur"),
    ("MZ", "15", "Mizoram"),
    ("TR", "16", "Tripura"),
    ("ML", "17", "Meghalaya"),
    ("AS", "18", "Assam"),
    ("WB", "19", "West Bengal"),
    ("JH", "20", "Jharkhand"),
    ("OD", "21", "Odisha"),
    ("CG", "22", "Chhattisgarh"),
    ("MP", "23", "Madhya Pradesh"),
    ("GJ", "24", "Gujarat"),
    ("DN", "26", "Dadra and Nagar Haveli and Daman and Diu"),
    ("MH", "27", "Maharashtra"),
    ("KA", "29", "Karnataka"),
    ("GA", "30", "Goa"),
    ("LD", "31", "Lakshadweep"),
    ("KL", "32", "Kerala"),
    ("TN", "33", "Tamil Nadu"),
    ("PY", "34", "Puducherry"),
    ("AN", "35", "Andaman and Nicobar Islands"),
    ("TS", "36", "Telangana"),
    ("AP", "37", "Andhra Pradesh"),
    ("LA", "38", "Ladakh"),
];

/// The place of supply of a buyer abroad (GST's code 96).
pub const ABROAD: Place = Place {
    code: "96",
    name: "Outside India",
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The GST state code, `29`.
    pub code: &'static str,
    pub name: &'static str,
}

impl Place {
    /// `Karnataka (29)`, as an invoice states its place of supply.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.code)
    }
}

/// Whether `a` and `b` name the same state (`KA` and `Karnataka` do); two
/// names this table does not know are compared as text, case aside.
pub fn same(a: &str, b: &str) -> bool {
    match (find(a), find(b)) {
        (Some(x), Some(y)) => x.code == y.code,
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

/// The state `given` names (`KA`, `ka`, `Karnataka` or `29`), if any.
pub fn find(given: &str) -> Option<Place> {
    let given = given.trim();
    PLACES
        .iter()
        .find(|(short, code, name)| {
            short.eq_ignore_ascii_case(given) || *code == given || name.eq_ignore_ascii_case(given)
        })
        .map(|&(_, code, name)| Place { code, name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_found_by_short_code_name_or_gst_code() {
        let karnataka = Place {
            code: "29",
            name: "Karnataka",
        };
        assert_eq!(find("KA"), Some(karnataka));
        assert_eq!(find(" karnataka "), Some(karnataka));
        assert_eq!(find("29"), Some(karnataka));
        assert_eq!(find("XX"), None);
        assert_eq!(karnataka.label(), "Karnataka (29)");
        assert!(same("Karnataka", "KA") && same("29", "ka") && !same("MH", "KA"));
        assert!(same("Atlantis", " atlantis"), "unknown names as text");
    }
}
