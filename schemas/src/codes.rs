//! The error codes of the API, shared because processors write them into
//! rejections that the ingress later reads back. One table, documented in
//! the README; families by thousands (1xxx cart, 2xxx coupon, 3xxx payment,
//! 4xxx gateway, 5xxx enrollment), plus the HTTP-level codes.

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
    CouponUnknown = 2001,
    CouponExpired = 2002,
    CouponNotYetValid = 2003,
    CouponMinimumNotReached = 2005,
    CouponNotApplicable = 2006,
    CouponNotCombinable = 2007,
    CouponUsedUp = 2008,
    CouponPerUserLimit = 2009,
    CouponOwnReferral = 2010,
    CouponTooMany = 2011,
    CouponAlreadyApplied = 2012,
    /// The payment failed, or does not match the order (402).
    PaymentFailed = 3001,
    /// The order is not in a state that allows this (409).
    PaymentInvalidState = 3002,
    /// No such order, or not the caller's (404).
    OrderNotFound = 3003,
    /// The order has no document of that kind (yet): an invoice comes
    /// when it is paid, a credit note when it is refunded (404).
    DocumentNotIssued = 3004,
    /// The gateway did not answer in time (504).
    GatewayTimeout = 4001,
    /// Fewer seats are left than new emails to assign (409).
    SeatsExhausted = 5001,
    /// The order holds no block of seats of that internship (422).
    NoSeatsToAssign = 5002,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 28] = [
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
        ErrorCode::CouponUnknown,
        ErrorCode::CouponExpired,
        ErrorCode::CouponNotYetValid,
        ErrorCode::CouponMinimumNotReached,
        ErrorCode::CouponNotApplicable,
        ErrorCode::CouponNotCombinable,
        ErrorCode::CouponUsedUp,
        ErrorCode::CouponPerUserLimit,
        ErrorCode::CouponOwnReferral,
        ErrorCode::CouponTooMany,
        ErrorCode::CouponAlreadyApplied,
        ErrorCode::PaymentFailed,
        ErrorCode::PaymentInvalidState,
        ErrorCode::OrderNotFound,
        ErrorCode::DocumentNotIssued,
        ErrorCode::GatewayTimeout,
        ErrorCode::SeatsExhausted,
        ErrorCode::NoSeatsToAssign,
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
