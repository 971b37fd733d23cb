//! An amount in words, as an Indian invoice states its total: rupees in
//! the Indian system (thousand, lakh, crore), other currencies in the
//! international one (thousand, million, billion), the minor unit after
//! "and" when there is one: `Indian Rupees One Lakh Twenty Thousand and
//! Fifty Paise Only`.

use schemas::Currency;

const ONES: [&str; 20] = [
    "Zero",
    "One",
    "Two",
    "Three",
    "Four",
    "Five",
    "Six",
    "Seven",
    "Eight",
    "Nine",
    "Ten",
    "Eleven",
    "Twelve",
    "Thirteen",
    "Fourteen",
    "Fifteen",
    "Sixteen",
    "Seventeen",
    "Eighteen",
    "Nineteen",
];
const TENS: [&str; 10] = [
    "", "", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety",
];

/// The currency's major and minor unit names, plural.
fn units(currency: &str) -> (String, &'static str) {
    let (major, minor) = match currency {
        "INR" => ("Indian Rupees", "Paise"),
        "USD" => ("US Dollars", "Cents"),
        "EUR" => ("Euros", "Cents"),
        "GBP" => ("Pounds Sterling", "Pence"),
        "AED" => ("UAE Dirhams", "Fils"),
        "SGD" => ("Singapore Dollars", "Cents"),
        "AUD" => ("Australian Dollars", "Cents"),
        "CAD" => ("Canadian Dollars", "Cents"),
        "JPY" => ("Japanese Yen", ""),
        "KRW" => ("South Korean Won", ""),
        "KWD" => ("Kuwaiti Dinars", "Fils"),
        "BHD" => ("Bahraini Dinars", "Fils"),
        "OMR" => ("Omani Rials", "Baisa"),
        other => return (other.to_owned(), "Minor Units"),
    };
    (major.to_owned(), minor)
}

/// `minor` units of `currency` in words. A currency the money module does
/// not know is read with two decimals.
pub fn amount_in_words(minor: i64, currency: &str) -> String {
    let currency = currency.trim().to_ascii_uppercase();
    let currency = currency.as_str();
    let exponent = Currency::parse(currency).map_or(2, |c| c.exponent());
    let scale = 10u64.pow(exponent);
    let magnitude = minor.unsigned_abs();
    let (major_n, minor_n) = (magnitude / scale, magnitude % scale);
    let indian = currency == "INR";
    let (major, minor_name) = units(currency);
    let mut out = String::new();
    if minor < 0 {
        out.push_str("Minus ");
    }
    out.push_str(&major);
    out.push(' ');
    out.push_str(&number(major_n, indian));
    if minor_n > 0 {
        out.push_str(" and ");
        out.push_str(&number(minor_n, indian));
        out.push(' ');
        out.push_str(minor_name);
    }
    out.push_str(" Only");
    out
}

/// A whole number in words.
pub fn number(n: u64, indian: bool) -> String {
    if n == 0 {
        return ONES[0].to_owned();
    }
    let groups: &[(u64, &str)] = if indian {
        &[
            (10_000_000, "Crore"),
            (100_000, "Lakh"),
            (1_000, "Thousand"),
        ]
    } else {
        &[
            (1_000_000_000_000, "Trillion"),
            (1_000_000_000, "Billion"),
            (1_000_000, "Million"),
            (1_000, "Thousand"),
        ]
    };
    let mut parts = Vec::new();
    let mut rest = n;
    for &(size, name) in groups {
        if rest >= size {
            // A count of crores may itself be large: read it the same way.
            let count = rest / size;
            let words = if count < 1000 {
                below_thousand(count)
            } else {
                number(count, indian)
            };
            parts.push(format!("{words} {name}"));
            rest %= size;
        }
    }
    if rest > 0 {
        parts.push(below_thousand(rest));
    }
    parts.join(" ")
}

fn below_thousand(n: u64) -> String {
    let mut parts = Vec::new();
    if n >= 100 {
        parts.push(format!("{} Hundred", ONES[(n / 100) as usize]));
    }
    let rest = n % 100;
    if rest >= 20 {
        let tens = TENS[(rest / 10) as usize];
        match rest % 10 {
            0 => parts.push(tens.to_owned()),
            u => parts.push(format!("{tens} {}", ONES[u as usize])),
        }
    } else if rest > 0 {
        parts.push(ONES[rest as usize].to_owned());
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rupees_read_in_lakhs_and_crores_with_paise() {
        assert_eq!(
            amount_in_words(118_050, "INR"),
            "Indian Rupees One Thousand One Hundred Eighty and Fifty Paise Only"
        );
        assert_eq!(
            amount_in_words(12_000_000, "INR"),
            "Indian Rupees One Lakh Twenty Thousand Only"
        );
        assert_eq!(
            amount_in_words(123_456_789_012, "INR"),
            "Indian Rupees One Hundred Twenty Three Crore Forty Five Lakh Sixty Seven Thousand \
             Eight Hundred Ninety and Twelve Paise Only"
        );
        assert_eq!(amount_in_words(0, "INR"), "Indian Rupees Zero Only");
        assert_eq!(
            number(10_000_000_000_000, true),
            "Ten Lakh Crore",
            "a count of crores is read in the same system"
        );
    }

    #[test]
    fn other_currencies_read_in_millions_with_their_minor_unit() {
        assert_eq!(
            amount_in_words(123_456_701, "USD"),
            "US Dollars One Million Two Hundred Thirty Four Thousand Five Hundred Sixty Seven and \
             One Cents Only"
        );
        assert_eq!(
            amount_in_words(1_500, "JPY"),
            "Japanese Yen One Thousand Five Hundred Only"
        );
        assert_eq!(
            amount_in_words(2_005, "KWD"),
            "Kuwaiti Dinars Two and Five Fils Only"
        );
        assert_eq!(amount_in_words(-1_000, "EUR"), "Minus Euros Ten Only");
    }
}
