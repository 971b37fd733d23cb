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
}

impl ErrorCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}
