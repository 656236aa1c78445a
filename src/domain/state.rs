//! The states a send and a delivery move through. Each state's database
//! text is written once, here: the store binds and reads these types, and
//! their JSON form is that same text.

use std::fmt;

/// A state's text was not one of its type's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a {kind}")]
pub struct UnknownState {
    kind: &'static str,
    text: String,
}

/// Declares a state enum with its database text, and the conversions that
/// text takes part in: `as_str`, `FromStr`, `Display`, serde and sqlx.
macro_rules! states {
    (
        $(#[$meta:meta])*
        $name:ident ($kind:literal) {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every state, in the order declared.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the database and shown in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownState;

            fn from_str(text: &str) -> Result<Self, UnknownState> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownState { kind: $kind, text: text.to_string() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'q str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'q str as sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(text.parse()?)
            }
        }
    };
}

states! {
    /// Where a report's send stands (`sends.state`).
    SendState ("send state") {
        /// Waiting for its time.
        Scheduled => "scheduled",
        /// Its deliveries are queued and going out.
        Sending => "sending",
        /// Set aside by an editor or by the service; resumable.
        Paused => "paused",
        /// Stopped for good; what was sent stays sent.
        Cancelled => "cancelled",
        /// Nothing left to deliver.
        Done => "done",
    }
}

states! {
    /// Where one queued message stands (`outbox.status`).
    DeliveryState ("delivery state") {
        /// Waiting to be sent, or being sent under a lease.
        Queued => "queued",
        /// Held while its send is paused.
        Paused => "paused",
        /// Accepted by the relay.
        Sent => "sent",
        /// Given up on, with the reason.
        Failed => "failed",
        /// Not sent on purpose (the reader left or the address is suppressed).
        Skipped => "skipped",
        /// Its send was cancelled before it went out.
        Cancelled => "cancelled",
    }
}

impl SendState {
    /// An editor may still pause it.
    pub fn can_pause(self) -> bool {
        matches!(self, SendState::Scheduled | SendState::Sending)
    }

    /// Not over yet: it may still send something.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            SendState::Scheduled | SendState::Sending | SendState::Paused
        )
    }

    /// Its failed deliveries may be queued again.
    pub fn can_retry(self) -> bool {
        matches!(
            self,
            SendState::Sending | SendState::Done | SendState::Paused
        )
    }
}

states! {
    /// Where one outgoing webhook delivery stands (`webhook_deliveries.status`).
    WebhookState ("webhook delivery state") {
        /// Waiting for its first or next attempt, or being posted under a lease.
        Queued => "queued",
        /// The endpoint answered 2xx.
        Delivered => "delivered",
        /// Refused for good (a 4xx or a redirect), or out of attempts.
        Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_text() {
        for state in SendState::ALL {
            assert_eq!(state.as_str().parse::<SendState>(), Ok(*state));
        }
        for state in DeliveryState::ALL {
            assert_eq!(state.as_str().parse::<DeliveryState>(), Ok(*state));
        }
    }

    #[test]
    fn json_is_the_database_text() {
        assert_eq!(
            serde_json::to_string(&SendState::Done).unwrap(),
            r#""done""#
        );
        assert_eq!(
            serde_json::from_str::<DeliveryState>(r#""skipped""#).unwrap(),
            DeliveryState::Skipped
        );
    }

    #[test]
    fn unknown_text_is_an_error_naming_it() {
        let err = "finished".parse::<SendState>().unwrap_err();
        assert_eq!(err.to_string(), r#""finished" is not a send state"#);
        assert!("Queued".parse::<DeliveryState>().is_err());
    }
}
