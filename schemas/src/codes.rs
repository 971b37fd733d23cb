//! The error codes of the API, shared because processors write them into
//! rejections that the ingress later reads back. One table, documented in
//! the README; families by thousands (1xxx cart, 2xxx coupon, 3xxx payment,
//! 4xxx gateway), plus the HTTP-level codes.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ErrorCode {
    CartNotFound = 1001,
    CartExpired = 1002,
    InternshipUnavailable = 1003,
    CartLimitExceeded = 1004,
    CartNotModifiable = 1005,
    CurrencyNotSupported = 1006,
    CartAlreadyExists = 1007,
    ItemNotInCart = 1008,
    InvalidBuyerDetails = 1009,
    PlanNotAvailable = 1010,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::CartNotFound,
        ErrorCode::CartExpired,
        ErrorCode::InternshipUnavailable,
        ErrorCode::CartLimitExceeded,
        ErrorCode::CartNotModifiable,
        ErrorCode::CurrencyNotSupported,
        ErrorCode::CartAlreadyExists,
        ErrorCode::ItemNotInCart,
        ErrorCode::InvalidBuyerDetails,
        ErrorCode::PlanNotAvailable,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    /// The code read back from a record.
    pub fn from_code(code: i32) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(c.code()), Some(c));
        }
        assert_eq!(ErrorCode::from_code(42), None);
    }
}
